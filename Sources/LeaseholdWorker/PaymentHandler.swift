import Foundation
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdReactor
import LeaseholdWire

/// `yookassa.notification`: a payment or refund event, applied by ``PaymentTransaction``.
///
/// The notification goes on record first (a webhook_log RECEIVED row, committed on its own), so
/// it is logged even if its transaction fails or this process dies; the transaction then marks
/// that row SUCCESS, IGNORED or FAILED, and a transaction that rolls back marks it FAILED with
/// the reason.
struct PaymentHandler: MessageHandler {
    let transaction = PaymentTransaction()

    var kind: String { YooKassaNotification.kind }

    func decode(_ entry: StreamEntry) throws(UnprocessableMessage) -> YooKassaNotification.Valid {
        let notification: YooKassaNotification
        do {
            notification = try JSONDecoder().decode(YooKassaNotification.self, from: Data(entry.payload))
        } catch {
            throw UnprocessableMessage("undecodable \(entry.kind) payload")
        }
        let valid: YooKassaNotification.Valid
        do {
            valid = try notification.validated()
        } catch {
            throw UnprocessableMessage("invalid \(entry.kind): \(error.reason)")
        }
        guard valid.messageKey == entry.key else {
            throw UnprocessableMessage("entry key \(entry.key) does not match its payload (\(valid.messageKey))")
        }
        return valid
    }

    func handle(_ notification: YooKassaNotification.Valid, entry: StreamEntry, context: HandlerContext) async throws
        -> HandledMessage
    {
        // One key for this delivery, the same on every try: a try whose connection was lost after
        // the INSERT reached the server may have committed it, and the next try must then find
        // that row rather than write a second one.
        let deliveryKey = UUID().uuidString
        let logID = try await context.once("recording the notification") { connection in
            try await WebhookLog.received(
                notification, key: entry.key, payload: entry.payload, attempt: entry.attempt, stream: entry.stream,
                entryID: entry.id, deliveryKey: deliveryKey, on: connection)
        }
        do {
            let result = try await context.withTransaction("the transaction") { connection in
                try await transaction.run(
                    notification, key: entry.key, logID: logID, stream: entry.stream, entryID: entry.id,
                    on: connection)
            }
            return HandledMessage(outcome: result.outcome.rawValue, duplicate: result.duplicate)
        } catch {
            let note =
                EntryProcessor.isOurCancellation(error)
                ? "interrupted by shutdown; the entry stays pending and is redelivered" : "\(error)"
            await markFailed(logID, note, context: context)
            throw error
        }
    }

    /// Compiles `leasehold_apply_payment` and plans its statements on the connection
    /// (``PaymentTransaction/warmUp(on:)``: a throwaway payment's success, rolled back).
    func warmUp(on connection: PostgresConnection) async throws {
        try await transaction.warmUp(on: connection)
    }

    /// Marks the webhook_log row FAILED after its transaction rolled back (best effort, in a task
    /// of its own, on the reactor, so a cancelled caller still records it).
    private func markFailed(_ logID: Int64, _ note: String, context: HandlerContext) async {
        let database = context.database
        do {
            _ = try await Task(executorPreference: database.reactor) {
                try await database.withConnection { try await WebhookLog.failed(logID, error: note, on: $0) }
            }.value
        } catch {
            context.logger.warning("could not mark the webhook_log row FAILED", metadata: ["error": "\(error)"])
        }
    }
}
