/// A YooKassa HTTP notification, as posted to `POST /yookassa/webhook`:
/// `{"type":"notification","event":"payment.succeeded","object":{…}}`.
///
/// Only the fields Leasehold acts on are decoded; everything else stays in the raw body, which
/// the worker keeps in `webhook_log.payload`. Amounts stay decimal strings (`"1990.10"`): they
/// go to PostgreSQL as text and are compared as `numeric`, never through a binary float.
public struct YooKassaNotification: Codable, Sendable, Equatable {
    /// The stream entry kind of a YooKassa notification.
    public static let kind = "yookassa.notification"

    public var type: String
    public var event: String
    public var object: Object

    public init(type: String = "notification", event: String, object: Object) {
        self.type = type
        self.event = event
        self.object = object
    }

    /// The payment (for `payment.*`) or refund (for `refund.succeeded`) the event is about.
    public struct Object: Codable, Sendable, Equatable {
        public var id: String
        public var status: String?
        public var amount: Amount?
        /// The refunded payment (refunds only).
        public var paymentID: String?
        public var cancellationDetails: CancellationDetails?

        public init(
            id: String, status: String? = nil, amount: Amount? = nil, paymentID: String? = nil,
            cancellationDetails: CancellationDetails? = nil
        ) {
            self.id = id
            self.status = status
            self.amount = amount
            self.paymentID = paymentID
            self.cancellationDetails = cancellationDetails
        }

        enum CodingKeys: String, CodingKey {
            case id, status, amount
            case paymentID = "payment_id"
            case cancellationDetails = "cancellation_details"
        }
    }

    /// `{"value":"1990.10","currency":"RUB"}`.
    public struct Amount: Codable, Sendable, Equatable {
        public var value: String
        public var currency: String

        public init(value: String, currency: String) {
            self.value = value
            self.currency = currency
        }
    }

    /// Why YooKassa (or the bank, or the merchant) canceled a payment.
    public struct CancellationDetails: Codable, Sendable, Equatable {
        public var party: String?
        public var reason: String?

        public init(party: String? = nil, reason: String? = nil) {
            self.party = party
            self.reason = reason
        }
    }

    /// The events Leasehold handles; any other event is refused at ingress.
    public enum Event: String, Sendable, CaseIterable {
        case paymentWaitingForCapture = "payment.waiting_for_capture"
        case paymentSucceeded = "payment.succeeded"
        case paymentCanceled = "payment.canceled"
        case refundSucceeded = "refund.succeeded"

        /// The `object.status` YooKassa sends with this event.
        var objectStatus: String {
            switch self {
            case .paymentWaitingForCapture: "waiting_for_capture"
            case .paymentSucceeded, .refundSucceeded: "succeeded"
            case .paymentCanceled: "canceled"
            }
        }
    }

    /// The checked form of a notification: every field the worker needs is present and sane.
    public struct Valid: Sendable, Equatable {
        public var event: Event
        /// `object.id`: the payment id, or the refund id for `refund.succeeded`.
        public var objectID: String
        /// The payment the event changes (`object.id`, or `object.payment_id` for a refund).
        public var paymentID: String
        /// Decimal string with at most two fractional digits.
        public var amount: String
        public var currency: String
        public var cancellationReason: String?

        public init(
            event: Event, objectID: String, paymentID: String, amount: String, currency: String,
            cancellationReason: String? = nil
        ) {
            self.event = event
            self.objectID = objectID
            self.paymentID = paymentID
            self.amount = amount
            self.currency = currency
            self.cancellationReason = cancellationReason
        }

        /// The dedupe key: `yk:<event>:<object.id>`.
        public var messageKey: String { "yk:\(event.rawValue):\(objectID)" }
    }

    /// Checks the notification; the error says, in one line, what is wrong.
    public func validated() throws(YooKassaNotificationError) -> Valid {
        guard type == "notification" else { throw .init("type must be \"notification\", got \"\(type)\"") }
        guard let event = Event(rawValue: event) else {
            let known = Event.allCases.map(\.rawValue).joined(separator: ", ")
            throw .init("unsupported event \"\(self.event)\"; expected one of \(known)")
        }
        guard Self.isIdentifier(object.id) else {
            throw .init("object.id must be 1 to 64 letters, digits, '-' or '_'")
        }
        if let status = object.status, status != event.objectStatus {
            throw .init("object.status \"\(status)\" does not match event \(event.rawValue)")
        }
        guard let amount = object.amount else { throw .init("missing field object.amount") }
        guard Self.isAmount(amount.value) else {
            throw .init(
                "object.amount.value must be a positive decimal string with at most 2 decimals, e.g. \"1990.10\"")
        }
        guard Self.isCurrency(amount.currency) else {
            throw .init("object.amount.currency must be a 3-letter ISO 4217 code such as RUB")
        }
        let paymentID: String
        if event == .refundSucceeded {
            guard let refunded = object.paymentID, Self.isIdentifier(refunded) else {
                throw .init("refund.succeeded needs object.payment_id (1 to 64 letters, digits, '-' or '_')")
            }
            paymentID = refunded
        } else {
            paymentID = object.id
        }
        let reason = object.cancellationDetails?.reason.map { String($0.prefix(200)) }
        return Valid(
            event: event, objectID: object.id, paymentID: paymentID, amount: amount.value,
            currency: amount.currency, cancellationReason: reason)
    }

    /// YooKassa ids are UUID-like (`2d8b1a5a-000f-5000-9000-1b6e2f2a6c3e`).
    public static func isIdentifier(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count)
            && text.utf8.allSatisfy { $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
    }

    /// `"1990.10"`, `"2"`, `"0.50"`: digits, an optional point and at most two decimals, above zero,
    /// at most 10 integer digits (the column is numeric(12,2)).
    public static func isAmount(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let whole = parts.first, (1...10).contains(whole.count),
            whole.utf8.allSatisfy(\.isASCIIDigit)
        else { return false }
        if parts.count == 2 {
            guard (1...2).contains(parts[1].count), parts[1].utf8.allSatisfy(\.isASCIIDigit) else { return false }
        }
        return text.utf8.contains { $0 >= UInt8(ascii: "1") && $0 <= UInt8(ascii: "9") }
    }

    public static func isCurrency(_ text: String) -> Bool {
        text.utf8.count == 3 && text.utf8.allSatisfy { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
    }
}

/// Why a notification was refused; `reason` is the one line the HTTP answer carries.
public struct YooKassaNotificationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}

extension UInt8 {
    fileprivate var isASCIIDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
    fileprivate var isASCIIAlphanumeric: Bool {
        isASCIIDigit || (self >= UInt8(ascii: "a") && self <= UInt8(ascii: "z"))
            || (self >= UInt8(ascii: "A") && self <= UInt8(ascii: "Z"))
    }
}
