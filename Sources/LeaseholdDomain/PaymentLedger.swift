import Foundation
import LeaseholdPostgres
import LeaseholdWire

/// The bot's side of payments: plans, and the pending payment it records before redirecting the
/// user to YooKassa's checkout. `leasehold payments` wraps it for demos, tests and ops.
public struct PaymentLedger: Sendable {
    public init() {}

    /// A refused ledger change, with the reason an operator reads.
    public struct Refusal: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Creates or updates plan `code`; returns its id. Existing payments keep the amount they
    /// were created with.
    public func upsertPlan(
        code: String, title: String, price: String, currency: String, days: Int, on connection: some PostgresExecutor
    ) async throws -> Int64 {
        guard YooKassaNotification.isAmount(price) else {
            throw Refusal(
                description: "price \(price) must be a positive decimal with at most 2 decimals, e.g. 1990.10")
        }
        guard YooKassaNotification.isCurrency(currency) else {
            throw Refusal(description: "currency \(currency) must be a 3-letter code such as RUB")
        }
        return try await connection.query(
            """
            INSERT INTO plans (code, title, price, currency, duration_days)
            VALUES (\(code), \(title), \(price)::numeric, \(currency), \(Int32(clamping: days)))
            ON CONFLICT (code) DO UPDATE
            SET title = excluded.title, price = excluded.price, currency = excluded.currency,
                duration_days = excluded.duration_days
            RETURNING id
            """
        ).single().decode(Int64.self, at: 0)
    }

    /// A payment as recorded.
    public struct Payment: Sendable, Codable, Equatable {
        public var providerPaymentID: String
        public var userID: Int64
        public var plan: String
        public var amount: String
        public var currency: String
        public var status: String
        public var refundedAmount: String
        public var subscriptionID: Int64?
        public var cancellationReason: String?

        enum CodingKeys: String, CodingKey {
            case providerPaymentID = "payment_id"
            case userID = "user_id"
            case plan, amount, currency, status
            case refundedAmount = "refunded_amount"
            case subscriptionID = "subscription_id"
            case cancellationReason = "cancellation_reason"
        }
    }

    /// Records a pending payment for `userID` on plan `planCode` (amount: the plan's price unless
    /// given). Creates the user when missing (`chatID` is where the bot's replies go).
    public func createPending(
        paymentID: String, userID: Int64, chatID: Int64?, planCode: String, amount: String?,
        on connection: some PostgresExecutor
    ) async throws -> Payment {
        guard YooKassaNotification.isIdentifier(paymentID) else {
            throw Refusal(description: "payment id \(paymentID) must be 1 to 64 letters, digits, '-' or '_'")
        }
        if let amount, !YooKassaNotification.isAmount(amount) {
            throw Refusal(
                description: "amount \(amount) must be a positive decimal with at most 2 decimals, e.g. 1990.10")
        }
        guard try await connection.query("SELECT 1 FROM plans WHERE code = \(planCode)").first != nil else {
            throw Refusal(description: "no plan \(planCode); create it with `leasehold payments plan \(planCode) …`")
        }
        try await connection.execute(
            "INSERT INTO users (id, telegram_chat_id) VALUES (\(userID), \(chatID)) ON CONFLICT (id) DO NOTHING")
        let inserted = try await connection.execute(
            """
            INSERT INTO payments (provider_payment_id, user_id, plan_id, amount, currency)
            SELECT \(paymentID), \(userID), id, coalesce(\(amount)::numeric, price), currency FROM plans WHERE code = \(planCode)
            ON CONFLICT (provider_payment_id) DO NOTHING
            """)
        guard inserted == 1 else {
            throw Refusal(description: "payment \(paymentID) already exists; nothing changed")
        }
        guard let payment = try await find(paymentID, on: connection) else {
            throw Refusal(description: "payment \(paymentID) vanished after insert")
        }
        return payment
    }

    /// The payment with YooKassa id `paymentID`, if any.
    public func find(_ paymentID: String, on connection: some PostgresExecutor) async throws -> Payment? {
        guard
            let row = try await connection.query(
                """
                SELECT p.provider_payment_id, p.user_id, pl.code, p.amount::text, p.currency, p.status,
                       p.refunded_amount::text, p.subscription_id, p.cancellation_reason
                FROM payments p JOIN plans pl ON pl.id = p.plan_id
                WHERE p.provider_payment_id = \(paymentID)
                """
            ).first
        else { return nil }
        let (id, user, plan, amount, currency, status, refunded, subscription, reason) = try row.decode(
            String.self, Int64.self, String.self, String.self, String.self, String.self, String.self, Int64?.self,
            String?.self)
        return Payment(
            providerPaymentID: id, userID: user, plan: plan, amount: amount, currency: currency, status: status,
            refundedAmount: refunded, subscriptionID: subscription, cancellationReason: reason)
    }

    /// A user's subscription.
    public struct Subscription: Sendable, Codable, Equatable {
        public var id: Int64
        public var plan: String
        public var status: String
        public var currentPeriodEnd: Date

        enum CodingKeys: String, CodingKey {
            case id, plan, status
            case currentPeriodEnd = "current_period_end"
        }
    }

    public func subscription(ofUser userID: Int64, on connection: some PostgresExecutor) async throws -> Subscription? {
        guard
            let row = try await connection.query(
                """
                SELECT s.id, pl.code, s.status, s.current_period_end
                FROM subscriptions s JOIN plans pl ON pl.id = s.plan_id WHERE s.user_id = \(userID)
                """
            ).first
        else { return nil }
        let (id, plan, status, end) = try row.decode(Int64.self, String.self, String.self, Date.self)
        return Subscription(id: id, plan: plan, status: status, currentPeriodEnd: end)
    }

    /// One webhook_log row.
    public struct LogEntry: Sendable, Codable, Equatable {
        public var event: String
        public var objectID: String
        public var status: String
        public var error: String?
        public var attempt: Int32
        public var receivedAt: Date

        enum CodingKeys: String, CodingKey {
            case event, status, error, attempt
            case objectID = "object_id"
            case receivedAt = "received_at"
        }
    }

    /// The notifications about payment `paymentID` (and its refunds), oldest first.
    public func log(of paymentID: String, on connection: some PostgresExecutor) async throws -> [LogEntry] {
        try await connection.query(
            """
            SELECT event, object_id, status, error, attempt, received_at FROM webhook_log
            WHERE object_id = \(paymentID) OR payload -> 'object' ->> 'payment_id' = \(paymentID)
            ORDER BY received_at, id
            """
        ).map { row in
            let (event, object, status, error, attempt, at) = try row.decode(
                String.self, String.self, String.self, String?.self, Int32.self, Date.self)
            return LogEntry(
                event: event, objectID: object, status: status, error: error, attempt: attempt, receivedAt: at)
        }
    }
}
