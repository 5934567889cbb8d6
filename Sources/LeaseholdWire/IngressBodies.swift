import Foundation

/// What ingress does with the body of each `POST` route, without HTTP: decoding and validation
/// only, so `leasehold ingress` and the fuzz target (Sources/IngressFuzz) run the same code.
/// Each throws a ``BodyRejection`` (400 or 422 with a one-line reason) or returns what to enqueue.
public enum IngressBodies {
    /// `POST /telegram/webhook`.
    public enum TelegramDecision: Sendable, Equatable {
        /// Not a callback query: answered 200, not enqueued.
        case ignore
        /// A callback query whose data is no command: answered at once, not enqueued.
        case unknownCommand(callbackQueryID: String)
        /// Enqueued under `tg:<updateID>`.
        case enqueue(updateID: Int64, callbackQueryID: String, booking: BookingRequest)
    }

    public static func telegram(_ body: Data) throws(BodyRejection) -> TelegramDecision {
        let bytes = Array(body)
        try StrictJSON.check(bytes)
        if let update = TelegramUpdate(plain: bytes) { return decision(update) }
        return decision(try IngressJSON.decodeChecked(TelegramUpdate.self, from: body))
    }

    /// ``telegram(_:)`` always the full way, `JSONDecoder` included: the reference the plain
    /// reader (``TelegramUpdate/init(plain:)``) is tested against, here and by the fuzz target.
    public static func telegramDecodedFully(_ body: Data) throws(BodyRejection) -> TelegramDecision {
        decision(try IngressJSON.decode(TelegramUpdate.self, from: body))
    }

    static func decision(_ update: TelegramUpdate) -> TelegramDecision {
        guard let callback = update.callbackQuery else { return .ignore }
        guard let data = callback.data,
            let booking = BookingRequest(
                callbackData: data, userID: callback.from.id, chatID: callback.message?.chat.id ?? callback.from.id,
                callbackQueryID: callback.id)
        else { return .unknownCommand(callbackQueryID: callback.id) }
        return .enqueue(updateID: update.updateID, callbackQueryID: callback.id, booking: booking)
    }

    /// `POST /v1/bookings`: `{request_id, user_id, slot_id}`, checked.
    public struct Booking: Sendable, Equatable {
        public var requestID: String
        public var booking: BookingRequest
    }

    struct CreateBooking: Decodable {
        var requestID: String
        var userID: Int64
        var slotID: Int64

        enum CodingKeys: String, CodingKey {
            case requestID = "request_id"
            case userID = "user_id"
            case slotID = "slot_id"
        }
    }

    public static func booking(_ data: Data) throws(BodyRejection) -> Booking {
        let body: CreateBooking
        if let plain = plainBooking(data) {
            body = plain
        } else {
            body = try IngressJSON.decode(CreateBooking.self, from: data)
        }
        guard isValidRequestID(body.requestID) else {
            throw BodyRejection(.invalid, "field request_id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
        }
        guard body.userID > 0 else { throw BodyRejection(.invalid, "field user_id must be positive") }
        guard body.slotID > 0 else { throw BodyRejection(.invalid, "field slot_id must be positive") }
        return Booking(
            requestID: body.requestID,
            booking: BookingRequest(action: .book, userID: body.userID, slotID: body.slotID, requestID: body.requestID))
    }

    /// The body when it is a flat object (``PlainJSONReader/flatObject(_:)``) holding exactly
    /// `request_id` (a string), `user_id` and `slot_id` (integers): what ``StrictJSON`` and `JSONDecoder` would make of it, for such
    /// a body passes the one and decodes the same with the other. `nil` for any other body, which
    /// then goes the full way with its exact errors. Ingress decodes one per request, and the two
    /// passes cost several times this one.
    static func plainBooking(_ body: Data) -> CreateBooking? {
        guard let members = PlainJSONReader.flatObject(body), members.count == 3 else { return nil }
        var requestID: String?
        var userID: Int64?
        var slotID: Int64?
        for (key, value) in members {
            switch (key, value) {
            case ("request_id", .string(let text)): requestID = text
            case ("user_id", .integer(let number)): userID = number
            case ("slot_id", .integer(let number)): slotID = number
            default: return nil
            }
        }
        guard let requestID, let userID, let slotID else { return nil }
        return CreateBooking(requestID: requestID, userID: userID, slotID: slotID)
    }

    /// `request_id`: 1–128 characters of `A-Z a-z 0-9 . _ : -`, so it is safe in a Redis key and a URL.
    public static func isValidRequestID(_ id: String) -> Bool {
        (1...128).contains(id.utf8.count)
            && id.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2E || byte == 0x5F || byte == 0x3A || byte == 0x2D
            }
    }

    /// `POST /yookassa/webhook`: the notification, checked; the body itself is what gets enqueued.
    public static func yookassa(_ body: Data) throws(BodyRejection) -> YooKassaNotification.Valid {
        let bytes = Array(body)
        try StrictJSON.check(bytes)
        if let notification = YooKassaNotification(plain: bytes) { return try validated(notification) }
        return try validated(try IngressJSON.decodeChecked(YooKassaNotification.self, from: body))
    }

    /// ``yookassa(_:)`` always the full way, `JSONDecoder` included: the reference the plain
    /// reader (``YooKassaNotification/init(plain:)``) is tested against, here and by the fuzz target.
    public static func yookassaDecodedFully(_ body: Data) throws(BodyRejection) -> YooKassaNotification.Valid {
        try validated(try IngressJSON.decode(YooKassaNotification.self, from: body))
    }

    static func validated(_ notification: YooKassaNotification) throws(BodyRejection) -> YooKassaNotification.Valid {
        do {
            return try notification.validated()
        } catch {
            throw BodyRejection(.invalid, error.reason)
        }
    }
}
