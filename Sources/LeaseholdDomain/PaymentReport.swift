import Foundation
import LeaseholdPostgres

/// What happened to one payment: the payment, its user's subscription and every notification
/// about it from `webhook_log`. `leasehold payments show` prints it; the ops console's
/// `/payments/<id>` page shows it.
public struct PaymentReport: Sendable, Encodable {
    public var payment: PaymentLedger.Payment
    public var subscription: PaymentLedger.Subscription?
    public var notifications: [PaymentLedger.LogEntry]

    /// The report of YooKassa payment `paymentID`, `nil` when there is no such payment.
    public static func load(_ paymentID: String, on connection: some PostgresExecutor) async throws -> PaymentReport? {
        let ledger = PaymentLedger()
        guard let payment = try await ledger.find(paymentID, on: connection) else { return nil }
        return PaymentReport(
            payment: payment, subscription: try await ledger.subscription(ofUser: payment.userID, on: connection),
            notifications: try await ledger.log(of: paymentID, on: connection))
    }

    /// The YooKassa ids of user `userID`'s payments, newest first.
    public static func paymentIDs(ofUser userID: Int64, limit: Int = 100, on connection: some PostgresExecutor)
        async throws
        -> [String]
    {
        try await connection.query(
            """
            SELECT provider_payment_id FROM payments WHERE user_id = \(userID)
            ORDER BY created_at DESC, provider_payment_id LIMIT \(limit)
            """
        ).map { try $0.decode(String.self, at: 0) }
    }
}
