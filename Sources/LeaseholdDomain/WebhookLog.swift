import LeaseholdPostgres
import LeaseholdWire

/// `webhook_log`: one row per delivery of a provider notification a worker handled.
///
/// ``received(_:key:payload:attempt:stream:entryID:on:)`` is committed on its own, before the
/// business transaction starts, so a notification is on record even when its transaction then
/// fails or the worker dies (the row stays RECEIVED). The business transaction itself sets the
/// final SUCCESS or IGNORED, atomically with the change; a failed transaction is marked FAILED
/// afterwards with ``failed(_:error:on:)``.
public enum WebhookLog {
    /// A row's status.
    public enum Status: String, Sendable {
        case received = "RECEIVED"
        case success = "SUCCESS"
        case ignored = "IGNORED"
        case failed = "FAILED"
    }

    /// Inserts a RECEIVED row and returns its id.
    ///
    /// `deliveryKey` names this delivery (the worker makes one per delivery, before its first
    /// try): a repeated call with the same key, after a connection lost before its answer
    /// arrived, inserts nothing and returns the row the first call wrote. `nil`: no key, every
    /// call inserts a row.
    public static func received(
        _ notification: YooKassaNotification.Valid, key: String, payload: [UInt8], attempt: Int, stream: String?,
        entryID: String?, deliveryKey: String? = nil, on connection: some PostgresExecutor
    ) async throws -> Int64 {
        let rows = try await connection.query(
            receivedStatement(
                notification, key: key, payload: payload, attempt: attempt, stream: stream, entryID: entryID,
                deliveryKey: deliveryKey))
        if let row = rows.first { return try row.decode(Int64.self, at: 0) }
        return try await connection.query(existingStatement(deliveryKey)).single().decode(Int64.self, at: 0)
    }

    /// The insert, or the id of the row an earlier try with the same delivery key committed. (A
    /// row committed after this statement's snapshot, by a try whose session outlived its
    /// connection, answers no row here: the caller then reads it with ``existingStatement(_:)``.)
    private static func receivedStatement(
        _ notification: YooKassaNotification.Valid, key: String, payload: [UInt8], attempt: Int, stream: String?,
        entryID: String?, deliveryKey: String?
    ) -> PostgresQuery {
        """
        WITH inserted AS (
            INSERT INTO webhook_log (message_key, event, object_id, payload, attempt, stream, entry_id, delivery_key)
            VALUES (\(key), \(notification.event.rawValue), \(notification.objectID),
                    \(PostgresJSONB(String(decoding: payload, as: UTF8.self))), \(Int32(clamping: attempt)), \(stream), \(entryID),
                    \(deliveryKey))
            ON CONFLICT (delivery_key) DO NOTHING
            RETURNING id)
        SELECT id FROM inserted
        UNION ALL
        SELECT id FROM webhook_log WHERE delivery_key = \(deliveryKey) AND NOT EXISTS (SELECT FROM inserted)
        """
    }

    private static func existingStatement(_ deliveryKey: String?) -> PostgresQuery {
        "SELECT id FROM webhook_log WHERE delivery_key = \(deliveryKey)"
    }

    /// Sets the final status of row `id` (no-op when `id` is nil).
    public static func finish(
        _ id: Int64?, _ status: Status, note: String? = nil, on connection: some PostgresExecutor
    ) async throws {
        guard let id else { return }
        try await connection.execute(finishStatement(id, status, note: note))
    }

    /// Marks row `id` FAILED with `error` (after the business transaction rolled back).
    public static func failed(_ id: Int64, error: String, on connection: some PostgresExecutor) async throws {
        try await finish(id, .failed, note: String(error.prefix(2_000)), on: connection)
    }

    private static func finishStatement(_ id: Int64, _ status: Status, note: String?) -> PostgresQuery {
        """
        UPDATE webhook_log SET status = \(status.rawValue), error = \(note), processed_at = clock_timestamp()
        WHERE id = \(id)
        """
    }
}
