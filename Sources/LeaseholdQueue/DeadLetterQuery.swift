import Foundation
import LeaseholdPostgres
import LeaseholdRedis

/// Reading, replaying and purging dead letters: what `leasehold dlq` does.
public struct DeadLetterQuery: Sendable {
    /// One dead letter as people and scripts see it.
    public struct Letter: Sendable, Codable, Equatable {
        public var id: Int64
        public var messageKey: String
        public var stream: String
        public var entryID: String
        public var kind: String
        public var attempts: Int
        public var lastError: String
        public var status: String
        public var firstSeenAt: Date
        public var deadLetteredAt: Date
        public var replayedAt: Date?
        public var replayEntryID: String?
        /// Whom the letter concerns, as read from its payload (``Filter/userID``, ``Filter/chatID``).
        public var userID: Int64?
        public var chatID: Int64?
        /// Only filled by ``show(_:postgres:)``.
        public var payload: String?
        /// Every attempt's failure, oldest first (only filled by ``show(_:postgres:)``).
        public var errorHistory: [AttemptFailure]?

        enum CodingKeys: String, CodingKey {
            case id, stream, kind, attempts, status, payload
            case messageKey = "message_key"
            case entryID = "entry_id"
            case lastError = "last_error"
            case firstSeenAt = "first_seen_at"
            case deadLetteredAt = "dead_lettered_at"
            case replayedAt = "replayed_at"
            case userID = "user_id"
            case chatID = "chat_id"
            case replayEntryID = "replay_entry_id"
            case errorHistory = "error_history"
        }
    }

    /// Which letters a command applies to; every field optional.
    public struct Filter: Sendable, Equatable {
        public var kind: String?
        public var stream: String?
        public var since: Date?
        public var olderThan: Date?
        /// Substring of the last error, case-insensitive.
        public var errorContains: String?
        /// `dead` by default; `nil` for every status.
        public var status: String?
        /// The user the letter concerns: a booking's `user_id`, a payment notification's payment's
        /// user (read from the payload when the letter was written; see migration 0012).
        public var userID: Int64?
        /// The Telegram chat a booking's reply goes to.
        public var chatID: Int64?

        public init(
            kind: String? = nil, stream: String? = nil, since: Date? = nil, olderThan: Date? = nil,
            errorContains: String? = nil, status: String? = "dead", userID: Int64? = nil, chatID: Int64? = nil
        ) {
            self.kind = kind
            self.stream = stream
            self.since = since
            self.olderThan = olderThan
            self.errorContains = errorContains
            self.status = status
            self.userID = userID
            self.chatID = chatID
        }

    }

    public init() {}

    static let columns =
        "id, message_key, stream, entry_id, kind, attempts, last_error, status, first_seen_at, dead_lettered_at, replayed_at, replay_entry_id, user_id, chat_id"

    static func letter(_ row: PostgresRow) throws -> Letter {
        Letter(
            id: try row.decode(Int64.self, at: 0), messageKey: try row.decode(String.self, at: 1),
            stream: try row.decode(String.self, at: 2), entryID: try row.decode(String.self, at: 3),
            kind: try row.decode(String.self, at: 4), attempts: Int(try row.decode(Int32.self, at: 5)),
            lastError: try row.decode(String.self, at: 6), status: try row.decode(String.self, at: 7),
            firstSeenAt: try row.decode(Date.self, at: 8), deadLetteredAt: try row.decode(Date.self, at: 9),
            replayedAt: try row.decode(Date?.self, at: 10), replayEntryID: try row.decode(String?.self, at: 11),
            userID: try row.decode(Int64?.self, at: 12), chatID: try row.decode(Int64?.self, at: 13))
    }

    /// Letters matching `filter`, newest first; `offset` skips that many (paging).
    public func list(_ filter: Filter, limit: Int = 100, offset: Int = 0, postgres: PostgresClient) async throws
        -> [Letter]
    {
        try await postgres.query(
            """
            SELECT \(unescaped: Self.columns) FROM dead_letters WHERE \(filter)
            ORDER BY dead_lettered_at DESC, id DESC LIMIT \(limit) OFFSET \(offset)
            """
        ).map(Self.letter)
    }

    /// The letters with these ids (any status), by id.
    public func letters(ids: [Int64], postgres: PostgresClient) async throws -> [Letter] {
        try await postgres.query(
            """
            SELECT \(unescaped: Self.columns) FROM dead_letters WHERE id = ANY(\(PostgresInt8Array(ids))) ORDER BY id
            """
        ).map(Self.letter)
    }

    /// How many letters match `filter`.
    public func count(_ filter: Filter, postgres: PostgresClient) async throws -> Int64 {
        try await postgres.query("SELECT count(*) FROM dead_letters WHERE \(filter)").single().decode(Int64.self, at: 0)
    }

    /// Letters still `dead`, grouped by `column` (`kind` or `last_error`), largest group first.
    public func deadCounts(by column: GroupColumn, limit: Int = 20, postgres: PostgresClient) async throws -> [(
        value: String, count: Int64
    )] {
        try await postgres.query(
            """
            SELECT \(unescaped: column.rawValue), count(*) FROM dead_letters WHERE status = 'dead'
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT \(limit)
            """
        ).map { row in try row.decode(String.self, Int64.self) }
    }

    /// What ``deadCounts(by:limit:postgres:)`` groups by.
    public enum GroupColumn: String, Sendable {
        case kind
        case lastError = "last_error"
    }

    /// ISO 8601, or a duration back from `now`: `90s`, `30m`, `2h`, `7d` (the `--since` and
    /// `--older-than` of `leasehold dlq`, the console's "since" field).
    public static func parseTime(_ text: String, now: Date = Date()) throws(TimeParseError) -> Date {
        if let date = ISO8601DateFormatter().date(from: text) { return date }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        if let unit = text.last.flatMap({ units[$0] }), let value = Double(text.dropLast()), value >= 0 {
            return now.addingTimeInterval(-value * unit)
        }
        throw TimeParseError(text: text)
    }

    /// A time that is neither ISO 8601 nor a duration.
    public struct TimeParseError: Error, Sendable, CustomStringConvertible {
        public var text: String
        public var description: String {
            "\(text) is neither ISO 8601 (2026-11-22T10:00:00Z) nor a duration (90s, 30m, 2h, 7d)"
        }
    }

    /// A payload pretty-printed when it is JSON (keys sorted), else as it is.
    public static func prettyPrinted(_ text: String?) -> String {
        guard let text, let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)),
            let data = try? JSONSerialization.data(
                withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        else { return text ?? "" }
        return String(decoding: data, as: UTF8.self)
    }

    /// One letter with its payload (as text when it is UTF-8, else hex) and error history.
    public func show(_ id: Int64, postgres: PostgresClient) async throws -> Letter? {
        guard
            let row = try await postgres.query(
                """
                SELECT \(unescaped: Self.columns), payload, error_history::text FROM dead_letters WHERE id = \(id)
                """
            ).first
        else { return nil }
        var letter = try Self.letter(row)
        let payload = try row.decode([UInt8].self, at: 14)
        letter.payload =
            String(validating: payload, as: UTF8.self) ?? payload.map { String(format: "%02x", $0) }.joined()
        letter.errorHistory = AttemptFailure.decode(Array(try row.decode(String.self, at: 15).utf8))
        return letter
    }

    /// Sends letters back to their origin stream as a first attempt (same key, so the inbox still
    /// guards against a double effect) and marks them `replayed`. Only `dead` letters are replayed,
    /// so replaying twice sends nothing the second time. With `dryRun`, only says what it would send.
    ///
    /// Each letter is marked in a transaction that commits only after its XADD succeeded: a
    /// failure leaves it `dead` (to replay again); a crash after the XADD but before the commit
    /// can send it twice, which the inbox makes harmless.
    public func replay(
        ids: [Int64]?, filter: Filter, dryRun: Bool, postgres: PostgresClient, redis: RedisClient
    ) async throws -> [Letter] {
        var candidates: [Letter]
        if let ids {
            candidates = try await postgres.query(
                """
                SELECT \(unescaped: Self.columns) FROM dead_letters
                WHERE id = ANY(\(PostgresInt8Array(ids))) AND status = 'dead' ORDER BY id
                """
            ).map(Self.letter)
        } else {
            candidates = try await list(filter, limit: 1_000_000, postgres: postgres).reversed()
        }
        guard !dryRun else { return candidates }
        var replayed: [Letter] = []
        for letter in candidates {
            let row = try await postgres.query(
                "SELECT payload FROM dead_letters WHERE id = \(letter.id) AND status = 'dead'")
            guard let payload = try row.first?.decode([UInt8].self, at: 0) else { continue }
            let entry = StreamEntry(
                stream: letter.stream, key: letter.messageKey, kind: letter.kind, payload: payload, attempt: 1)
            let newID: String? = try await postgres.withTransaction { connection in
                let locked = try await connection.query(
                    "SELECT id FROM dead_letters WHERE id = \(letter.id) AND status = 'dead' FOR UPDATE")
                guard !locked.isEmpty else { return nil }
                // XADD inside the transaction: the mark commits only once the entry is on the stream.
                let id = try await Self.xadd(entry, redis: redis)
                try await connection.execute(
                    """
                    UPDATE dead_letters SET status = 'replayed', replayed_at = now(), replay_entry_id = \(id)
                    WHERE id = \(letter.id)
                    """)
                return id
            }
            if let newID {
                var done = letter
                done.status = "replayed"
                done.replayEntryID = newID
                replayed.append(done)
            }
        }
        return replayed
    }

    /// The replayed entry's XADD, from inside the transaction that marks the letter replayed.
    private static func xadd(_ entry: StreamEntry, redis: RedisClient) async throws -> String {
        let reply = try await redis.send(RedisCommand(["XADD", entry.stream, "*"] + entry.fields))
        guard let id = reply.string else {
            throw RedisError(source: .server, code: .proto, message: "XADD returned \(reply)", command: "XADD")
        }
        return id
    }

    /// Marks letters `purged` (the rows stay, for the audit trail). Returns how many.
    public func purge(ids: [Int64]?, filter: Filter, postgres: PostgresClient) async throws -> Int {
        if let ids {
            return try await postgres.execute(
                """
                UPDATE dead_letters SET status = 'purged', purged_at = now()
                WHERE id = ANY(\(PostgresInt8Array(ids))) AND status <> 'purged'
                """)
        }
        return try await postgres.execute(
            "UPDATE dead_letters SET status = 'purged', purged_at = now() WHERE status <> 'purged' AND \(filter)")
    }

    /// Counts by status, kind and stream.
    public func stats(postgres: PostgresClient) async throws -> [(
        status: String, kind: String, stream: String, count: Int64
    )] {
        try await postgres.query(
            "SELECT status, kind, stream, count(*) FROM dead_letters GROUP BY 1, 2, 3 ORDER BY 1, 4 DESC"
        ).map { row in
            let (status, kind, stream, count) = try row.decode(String.self, String.self, String.self, Int64.self)
            return (status, kind, stream, count)
        }
    }
}

extension PostgresQuery.StringInterpolation {
    /// A dead-letter filter as a WHERE condition, every value a bind (`NULL` disables a condition).
    mutating func appendInterpolation(_ filter: DeadLetterQuery.Filter) {
        appendLiteral("(")
        appendInterpolation(filter.kind)
        appendLiteral("::text IS NULL OR kind = ")
        appendInterpolation(filter.kind)
        appendLiteral(") AND (")
        appendInterpolation(filter.stream)
        appendLiteral("::text IS NULL OR stream = ")
        appendInterpolation(filter.stream)
        appendLiteral(") AND (")
        appendInterpolation(filter.since)
        appendLiteral("::timestamptz IS NULL OR dead_lettered_at >= ")
        appendInterpolation(filter.since)
        appendLiteral(") AND (")
        appendInterpolation(filter.olderThan)
        appendLiteral("::timestamptz IS NULL OR dead_lettered_at < ")
        appendInterpolation(filter.olderThan)
        appendLiteral(") AND (")
        appendInterpolation(filter.errorContains)
        appendLiteral("::text IS NULL OR strpos(lower(last_error), lower(")
        appendInterpolation(filter.errorContains)
        appendLiteral(")) > 0) AND (")
        appendInterpolation(filter.status)
        appendLiteral("::text IS NULL OR status = ")
        appendInterpolation(filter.status)
        appendLiteral(") AND (")
        appendInterpolation(filter.userID)
        appendLiteral("::bigint IS NULL OR user_id = ")
        appendInterpolation(filter.userID)
        appendLiteral(") AND (")
        appendInterpolation(filter.chatID)
        appendLiteral("::bigint IS NULL OR chat_id = ")
        appendInterpolation(filter.chatID)
        appendLiteral(")")
    }
}
