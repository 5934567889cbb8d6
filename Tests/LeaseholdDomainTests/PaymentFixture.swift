import Foundation
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdRuntime
import LeaseholdTesting
import LeaseholdWire

/// A migrated database of its own, with a plan and helpers to record payments and apply
/// notifications exactly as the worker does (RECEIVED log row, then one transaction).
struct PaymentFixture {
    let database: TemporaryDatabase
    let client: PostgresClient

    static func start() async throws -> PaymentFixture {
        let database = try await TemporaryDatabase.create()
        let client = database.client(size: 8)
        _ = try await Migrator(client: client).migrate(
            try Migration.load(from: LeaseholdExecutable.migrationsDirectory))
        _ = try await client.withTransaction { connection in
            try await PaymentLedger().upsertPlan(
                code: "month", title: "Месяц", price: "1990.10", currency: "RUB", days: 30, on: connection)
        }
        return PaymentFixture(database: database, client: client)
    }

    func stop() async {
        await client.close()
        try? await database.drop()
    }

    @discardableResult
    func createPayment(_ id: String, user: Int64 = 7, chat: Int64? = 7007, amount: String? = nil) async throws
        -> PaymentLedger.Payment
    {
        try await client.withTransaction { connection in
            try await PaymentLedger().createPending(
                paymentID: id, userID: user, chatID: chat, planCode: "month", amount: amount, on: connection)
        }
    }

    static func notification(
        _ event: YooKassaNotification.Event, _ objectID: String, amount: String = "1990.10", paymentID: String? = nil,
        reason: String? = nil
    ) -> YooKassaNotification.Valid {
        let object = YooKassaNotification.Object(
            id: objectID, amount: .init(value: amount, currency: "RUB"), paymentID: paymentID,
            cancellationDetails: reason.map { .init(party: "yoo_money", reason: $0) })
        return try! YooKassaNotification(event: event.rawValue, object: object).validated()
    }

    /// Records `notification`'s RECEIVED webhook_log row, as the worker does before the
    /// transaction; returns its id.
    func received(_ notification: YooKassaNotification.Valid) async throws -> Int64 {
        let payload = Array(#"{"type":"notification"}"#.utf8)
        return try await client.withConnection { connection in
            try await WebhookLog.received(
                notification, key: notification.messageKey, payload: payload, attempt: 1, stream: nil, entryID: nil,
                on: connection)
        }
    }

    /// Applies `notification` as a worker would; returns the result and its webhook_log row id.
    func apply(_ notification: YooKassaNotification.Valid) async throws -> (PaymentResult, Int64) {
        let logID = try await received(notification)
        let result = try await client.withTransaction { connection in
            try await PaymentTransaction().run(notification, key: notification.messageKey, logID: logID, on: connection)
        }
        return (result, logID)
    }

    func payment(_ id: String) async throws -> PaymentLedger.Payment? {
        try await client.withConnection { try await PaymentLedger().find(id, on: $0) }
    }

    func subscription(user: Int64 = 7) async throws -> PaymentLedger.Subscription? {
        try await client.withConnection { try await PaymentLedger().subscription(ofUser: user, on: $0) }
    }

    func logStatus(_ id: Int64) async throws -> (String, String?) {
        try await client.query("SELECT status, error FROM webhook_log WHERE id = \(id)").single()
            .decode(String.self, String?.self)
    }

    func count(_ sql: String) async throws -> Int64 {
        try await client.query(PostgresQuery(unsafeSQL: sql)).single().decode(Int64.self, at: 0)
    }

    /// Whole days from now to `date`, rounded.
    static func daysFromNow(_ date: Date) -> Int {
        Int((date.timeIntervalSinceNow / 86_400).rounded())
    }
}
