import Foundation
import LeaseholdPostgres
import LeaseholdRedis

/// Dead letters: messages that can never succeed, kept in PostgreSQL (`dead_letters`).
///
/// ``deadLetter(_:reason:worker:postgres:redis:)`` inserts first (idempotently: one row per stream
/// entry) and acknowledges second, so a crash in between loses nothing (the entry is still pending
/// and will be dead-lettered again) and duplicates nothing (the second insert is a no-op).
///
/// The row's `error_history` (jsonb) holds every attempt's failure, oldest first: the records the
/// message carried through its retries (``StreamEntry/failures``) plus the last attempt's, each
/// `{"at", "attempt", "worker", "error"}` (``AttemptFailure``). `last_error` stays the last one.
public struct DeadLetterStore: Sendable {
    public let keys: RedisKeys

    public init(keys: RedisKeys) {
        self.keys = keys
    }

    /// One attempt's failure, for the error history.
    public typealias Failure = AttemptFailure

    /// Records `entry` as dead with `reason`, then acknowledges it. Returns the dead letter's id.
    ///
    /// - Parameters:
    ///   - reason: why the last attempt failed (and why there is no next one): `last_error`.
    ///   - worker: who made the last attempt (a worker's consumer name), for its history record.
    @discardableResult
    public func deadLetter(
        _ entry: StreamEntry, reason: String, worker: String? = nil, postgres: PostgresClient,
        redis: some RedisCommandRunner
    ) async throws -> Int64 {
        let failures = entry.failures + [AttemptFailure(attempt: entry.attempt, worker: worker, error: reason)]
        let historyJSON = String(decoding: AttemptFailure.encode(failures), as: UTF8.self)
        let firstSeen = Date(timeIntervalSince1970: Double(entry.enqueuedAtMilliseconds) / 1000)
        let id = try await postgres.withConnection { connection in
            try await connection.query(
                """
                WITH inserted AS (
                    INSERT INTO dead_letters
                        (message_key, stream, entry_id, kind, payload, attempts, last_error, error_history,
                         first_seen_at)
                    VALUES (\(entry.key), \(entry.stream), \(entry.id), \(entry.kind), \(entry.payload),
                            \(Int32(clamping: entry.attempt)), \(reason), \(PostgresJSONB(historyJSON)), \(firstSeen))
                    ON CONFLICT ON CONSTRAINT dead_letters_one_per_entry DO NOTHING
                    RETURNING id)
                SELECT id FROM inserted
                UNION ALL
                SELECT id FROM dead_letters WHERE stream = \(entry.stream) AND entry_id = \(entry.id)
                LIMIT 1
                """
            ).single().decode(Int64.self, at: 0)
        }
        _ = try await redis.send("XACK", entry.stream, RedisKeys.consumerGroup, entry.id)
        return id
    }

    /// Records an entry that could not even be decoded, its raw fields (`name=value` lines, read
    /// again with XRANGE) kept as the payload so nothing is lost, then acknowledges it.
    @discardableResult
    public func deadLetterUndecodable(
        _ failure: StreamEntryDecodingError, worker: String? = nil, postgres: PostgresClient,
        redis: some RedisCommandRunner
    ) async throws -> Int64? {
        guard let entryID = failure.entryID else { return nil }
        let raw = try await redis.send("XRANGE", failure.stream, entryID, entryID)
        let entry = StreamEntry(
            id: entryID, stream: failure.stream, key: "undecodable:\(failure.stream):\(entryID)", kind: "undecodable",
            payload: Self.rawFields(raw.array?.first), attempt: 1,
            enqueuedAtMilliseconds: Int64(entryID.split(separator: "-").first ?? "") ?? 0)
        return try await deadLetter(entry, reason: failure.reason, worker: worker, postgres: postgres, redis: redis)
    }

    /// An entry's fields as `name=value` lines.
    static func rawFields(_ raw: RedisValue?) -> [UInt8] {
        guard let pair = raw?.array, pair.count == 2, let flat = pair[1].array else { return [] }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: flat.count - 1, by: 2) {
            bytes += (flat[index].bytes ?? []) + Array("=".utf8) + (flat[index + 1].bytes ?? []) + [10]
        }
        return bytes
    }
}
