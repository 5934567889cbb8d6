import Foundation
import LeaseholdPostgres
import LeaseholdWire

/// What a payment transaction did with a notification; the inbox records `outcome`.
public enum PaymentOutcome: String, Sendable, Equatable {
    /// The event changed the payment (and the subscription): webhook_log SUCCESS.
    case applied
    /// A late or repeated event, recorded and not applied: webhook_log IGNORED.
    case ignored
    /// The event contradicts the payment (amount, currency or an over-refund) and can never
    /// apply: webhook_log FAILED, not retried.
    case rejected
}

/// The result of ``PaymentTransaction/run(_:key:logID:stream:entryID:on:)``.
public struct PaymentResult: Sendable, Equatable {
    public var outcome: PaymentOutcome
    /// Why the event was ignored or rejected.
    public var note: String?
    /// `true` when the message key was already in the inbox (a redelivery or a provider retry).
    public var duplicate: Bool

    public init(outcome: PaymentOutcome, note: String? = nil, duplicate: Bool = false) {
        self.outcome = outcome
        self.note = note
        self.duplicate = duplicate
    }
}

/// A notification that cannot apply yet and must be retried: the payment is not in the
/// database (the bot has not recorded it yet), or a refund arrived before `payment.succeeded`.
/// The transaction rolls back; the queue retries with backoff and dead-letters after its limit.
public struct PaymentNotYetApplicableError: Error, Sendable, Equatable, CustomStringConvertible {
    public var paymentID: String
    public var reason: String

    public init(paymentID: String, reason: String) {
        self.paymentID = paymentID
        self.reason = reason
    }

    public var description: String { "payment \(paymentID): \(reason); will retry" }
}

/// The payment transaction: the fix of incident 001 (Runbooks/architecture.md: `FOR UPDATE`
/// on the nullable side of an outer join) as architecture.
///
/// The transaction is the PostgreSQL function `leasehold_apply_payment`
/// (Migrations/0008_payment_function.sql), called in one statement, so a notification costs one
/// round trip and the payment's row lock is held only while the function runs inside the server.
/// It does, in this order:
///
/// 1. **Inbox first** (`INSERT … ON CONFLICT DO NOTHING` of `yk:<event>:<object.id>`): a key
///    already there is a provider retry or a redelivery — IGNORED, nothing changes.
/// 2. **Lock the payment, and only the payment**: the query joins user and plan and
///    outer-joins the nullable subscription, and locks with `FOR UPDATE OF p`. A bare
///    `FOR UPDATE` here is exactly what PostgreSQL refused in the incident ("FOR UPDATE cannot
///    be applied to the nullable side of an outer join"); a test runs a copy of the function with
///    that lock and checks it still fails, so this guard stays honest.
/// 3. **Decide** with the one-way state machine: only forward moves apply (pending →
///    waiting_for_capture → succeeded → refunded, pending or waiting_for_capture → canceled);
///    late or repeated events are ignored.
/// 4. **Apply**: `payment.succeeded` locks the user's subscription (creating it on the first
///    payment) and extends it from `max(now, current end)` by the plan's duration; a refund takes
///    back the refunded share of the time this payment bought (README, "Refunds"). Lock order is
///    always payment, then subscription, so two payments of one user cannot deadlock.
/// 5. **Record**: inbox outcome, webhook_log SUCCESS/IGNORED/FAILED, an outbox reply to the
///    user's chat — all in the same transaction as the change.
///
/// A notification that cannot apply yet makes the function raise SQLSTATE
/// ``notYetApplicableSQLState``: the statement, and with it the caller's transaction, rolls back
/// (the inbox row included), and ``run(_:key:logID:stream:entryID:on:)`` throws
/// ``PaymentNotYetApplicableError``.
public struct PaymentTransaction: Sendable {
    public init() {}

    /// The SQLSTATE `leasehold_apply_payment` raises for a notification that cannot apply yet; the
    /// error's message is the reason.
    public static let notYetApplicableSQLState = "LHNYA"

    /// The bot's replies to `notification`, as the JSON object the function reads them from:
    /// `succeeded` and `plan` are `format()` templates (the plan's title and the subscription's
    /// new end come from the database), the others final texts.
    static func replies(to notification: YooKassaNotification.Valid) -> String {
        let refund = "↩️ Возврат \(notification.amount) \(notification.currency) оформлен."
        let reason = notification.cancellationReason.map { " (\($0))" } ?? ""
        let texts = [
            "succeeded": "✅ Оплата получена. Подписка%1$s активна до %2$s.",
            "plan": " «%s»",
            "canceled": "❌ Оплата не прошла\(reason). Подписка не изменилась.",
            "refunded": refund,
            "refund_shortened": refund + " Срок подписки сокращён.",
            "refund_ended": refund + " Подписка завершена.",
        ]
        let data = (try? JSONSerialization.data(withJSONObject: texts, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// Applies `notification` (dedupe key `key`) on `connection` (a connection or a client);
    /// `logID` is its RECEIVED webhook_log row. One statement, which is its own transaction when
    /// the connection is not inside one, or part of the caller's, run as the session's prepared
    /// statement `leasehold_apply_payment`, parsed and planned once per connection.
    public func run(
        _ notification: YooKassaNotification.Valid, key: String, logID: Int64?, stream: String? = nil,
        entryID: String? = nil, on connection: some PostgresExecutor
    ) async throws -> PaymentResult {
        let rows: PostgresRows
        do {
            rows = try await connection.query(
                statement(notification, key: key, logID: logID, stream: stream, entryID: entryID),
                preparedAs: "leasehold_apply_payment")
        } catch let error as PostgresError {
            throw Self.translate(error, notification)
        }
        return try Self.result(of: rows)
    }

    /// Applies a `payment.succeeded` of a throwaway payment (with its user and plan) on
    /// `connection`, then rolls everything back, as ``BookingTransaction/warmUp(on:)`` does for
    /// bookings: what stays is the prepared statement `leasehold_apply_payment`, the function
    /// compiled and its statements planned in that backend, so the first notifications after a
    /// worker starts do not pay for them. The rows get random negative ids or a `leasehold-warm-up`
    /// name; the rolled-back inserts spend one value each of the `payments`, `subscriptions` and
    /// `outbox` identities.
    public func warmUp(on connection: PostgresConnection) async throws {
        let id = Int64.random(in: Int64.min / 2 ... -1)
        try await inRolledBackTransaction(on: connection) { connection in
            try await payThrowaway(id: id, on: connection)
        }
    }

    /// ``warmUp(on:)``'s transaction, up to its rollback.
    private func payThrowaway(id: Int64, on connection: PostgresConnection) async throws {
        let name = "leasehold-warm-up-\(-id)"
        try await connection.execute(
            "INSERT INTO users (id, telegram_chat_id, name) VALUES (\(id), \(id), 'leasehold warm-up')")
        try await connection.execute(
            "INSERT INTO plans (id, code, price, duration_days) VALUES (\(id), \(name), 1, 1)")
        try await connection.execute(
            """
            INSERT INTO payments (provider_payment_id, user_id, plan_id, amount, currency)
            VALUES (\(name), \(id), \(id), 1, 'RUB')
            """)
        let notification = YooKassaNotification.Valid(
            event: .paymentSucceeded, objectID: name, paymentID: name, amount: "1.00", currency: "RUB",
            cancellationReason: nil)
        _ = try await run(notification, key: notification.messageKey, logID: nil, on: connection)
        _ = try await run(notification, key: notification.messageKey, logID: nil, on: connection)
    }

    /// The one statement: `leasehold_apply_payment` with the notification and its replies.
    func statement(
        _ notification: YooKassaNotification.Valid, key: String, logID: Int64?, stream: String?, entryID: String?
    ) -> PostgresQuery {
        """
        SELECT o_outcome, o_note, o_duplicate FROM leasehold_apply_payment(
            \(key), \(notification.event.rawValue), \(notification.paymentID), \(notification.amount),
            \(notification.currency), \(notification.cancellationReason), \(logID), \(stream), \(entryID),
            \(Self.replies(to: notification))::jsonb)
        """
    }

    /// The function's "not yet" SQLSTATE as ``PaymentNotYetApplicableError``; any other error as it is.
    private static func translate(_ error: PostgresError, _ notification: YooKassaNotification.Valid) -> any Error {
        // Not `catch … where` at the call sites: that crashes the Swift 6.3.1 compiler (SIL
        // ownership verifier).
        guard error.sqlState == notYetApplicableSQLState else { return error }
        return PaymentNotYetApplicableError(paymentID: notification.paymentID, reason: error.message)
    }

    static func result(of rows: PostgresRows) throws -> PaymentResult {
        let (outcome, note, duplicate) = try rows.single().decode(String.self, String?.self, Bool.self)
        return PaymentResult(outcome: PaymentOutcome(rawValue: outcome) ?? .ignored, note: note, duplicate: duplicate)
    }
}
