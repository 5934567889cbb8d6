import Foundation

/// One failed attempt of a message: when, which attempt, who made it (the worker's consumer name)
/// and why. Every failure of a message is kept, in order, from its first attempt to its dead letter:
///
/// - a failed attempt adds its record to the retry it parks (``RetryScheduler``), in the hash
///   field `errors`;
/// - when the retry is due, that list travels back onto the stream with the message (the stream
///   entry's `errors` field, ``StreamEntry/failures``), so the next failure appends to it;
/// - the dead letter stores the whole list, the last attempt's record included, in
///   `dead_letters.error_history` (``DeadLetterStore``), and `leasehold dlq show` prints it.
///
/// JSON: `{"at": "2026-11-27T10:00:00.123Z", "attempt": 2, "worker": "host-42-ab12cd34",
/// "error": "…"}`; `at` is ISO 8601 with milliseconds, whatever the encoder's date strategy.
public struct AttemptFailure: Sendable, Codable, Equatable {
    public var at: Date
    public var attempt: Int
    /// The consumer that made the attempt; `nil` in records written before workers were recorded.
    public var worker: String?
    public var error: String

    /// The longest error text kept per attempt, so a message's history stays small in Redis.
    public static let maximumErrorLength = 2_000

    public init(at: Date = Date(), attempt: Int, worker: String?, error: String) {
        self.at = at
        self.attempt = attempt
        self.worker = worker
        self.error =
            error.count > Self.maximumErrorLength ? String(error.prefix(Self.maximumErrorLength)) + "…" : error
    }

    enum CodingKeys: String, CodingKey {
        case at, attempt, worker, error
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let text = try container.decode(String.self, forKey: .at)
        guard let at = Self.parse(text) else {
            throw DecodingError.dataCorruptedError(
                forKey: .at, in: container, debugDescription: "not an ISO 8601 time: \(text)")
        }
        self.at = at
        self.attempt = try container.decode(Int.self, forKey: .attempt)
        self.worker = try container.decodeIfPresent(String.self, forKey: .worker)
        self.error = try container.decode(String.self, forKey: .error)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Self.format(at), forKey: .at)
        try container.encode(attempt, forKey: .attempt)
        try container.encodeIfPresent(worker, forKey: .worker)
        try container.encode(error, forKey: .error)
    }

    /// `2026-11-27T10:00:00.123Z`.
    public static func format(_ date: Date) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date)
    }

    /// ISO 8601 with or without fractional seconds (older records have none).
    static func parse(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }

    /// A list as the JSON array stored in Redis and PostgreSQL.
    public static func encode(_ failures: [AttemptFailure]) -> [UInt8] {
        // Encoding these plain fields cannot fail.
        (try? Array(JSONEncoder().encode(failures))) ?? Array("[]".utf8)
    }

    /// A list read back; an unreadable one is empty rather than an error (the history is for
    /// people; losing it must not stop the message).
    public static func decode(_ json: [UInt8]) -> [AttemptFailure] {
        (try? JSONDecoder().decode([AttemptFailure].self, from: Data(json))) ?? []
    }
}
