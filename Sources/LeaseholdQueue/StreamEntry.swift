import Foundation
import LeaseholdRedis

/// One message on a Leasehold stream, as ingress writes it and workers read it.
///
/// Fields on the wire: `key` (the dedupe key, e.g. `tg:<update_id>`), `kind`
/// (`booking`, `telegram.callback`, …), `payload` (JSON), `attempt` (1 for a first delivery),
/// `enqueued_at` (milliseconds since 1970), and, from the second attempt on, `errors` (the JSON
/// array of the earlier attempts' ``AttemptFailure``s, carried over from the retry schedule).
public struct StreamEntry: Sendable, Equatable {
    /// The stream entry ID (`1700000000000-0`); empty before XADD.
    public var id: String
    /// The stream it was read from.
    public var stream: String
    public var key: String
    public var kind: String
    public var payload: [UInt8]
    public var attempt: Int
    public var enqueuedAtMilliseconds: Int64
    /// The earlier attempts' failures, oldest first (the `errors` field); empty on a first attempt.
    public var failures: [AttemptFailure]

    public init(
        id: String = "", stream: String, key: String, kind: String, payload: [UInt8], attempt: Int = 1,
        enqueuedAtMilliseconds: Int64 = Int64(Date().timeIntervalSince1970 * 1000), failures: [AttemptFailure] = []
    ) {
        self.id = id
        self.stream = stream
        self.key = key
        self.kind = kind
        self.payload = payload
        self.attempt = attempt
        self.enqueuedAtMilliseconds = enqueuedAtMilliseconds
        self.failures = failures
    }

    /// The field/value pairs for XADD (`errors` only when there were earlier failures).
    public var fields: [any RedisArgument] {
        var fields: [any RedisArgument] = [
            "key", key, "kind", kind, "payload", payload, "attempt", attempt,
            "enqueued_at", enqueuedAtMilliseconds,
        ]
        if !failures.isEmpty { fields += ["errors", AttemptFailure.encode(failures)] }
        return fields
    }

    /// Decodes one `[id, [field, value, …]]` element of an XREADGROUP / XAUTOCLAIM reply.
    ///
    /// An entry whose fields cannot be read is not dropped: it comes back as a
    /// ``StreamEntryDecodingError`` carrying its ID, so the caller can dead-letter it.
    public init(stream: String, reply: RedisValue) throws(StreamEntryDecodingError) {
        guard case .array(let pair) = reply, pair.count == 2, let id = pair[0].string else {
            throw StreamEntryDecodingError(stream: stream, entryID: nil, reason: "not an [id, fields] pair")
        }
        guard case .array(let flat) = pair[1], flat.count % 2 == 0 else {
            // A deleted entry still pending shows up with nil fields.
            throw StreamEntryDecodingError(stream: stream, entryID: id, reason: "entry has no fields (deleted?)")
        }
        var fields: [String: [UInt8]] = [:]
        for index in stride(from: 0, to: flat.count, by: 2) {
            guard let name = flat[index].string, let value = flat[index + 1].bytes else { continue }
            fields[name] = value
        }
        func text(_ name: String) throws(StreamEntryDecodingError) -> String {
            guard let bytes = fields[name], let value = String(validating: bytes, as: UTF8.self), !value.isEmpty else {
                throw StreamEntryDecodingError(stream: stream, entryID: id, reason: "missing field \(name)")
            }
            return value
        }
        self.id = id
        self.stream = stream
        self.key = try text("key")
        self.kind = try text("kind")
        guard let payload = fields["payload"] else {
            throw StreamEntryDecodingError(stream: stream, entryID: id, reason: "missing field payload")
        }
        self.payload = payload
        self.attempt = Int(try text("attempt")) ?? 1
        self.enqueuedAtMilliseconds = Int64(try text("enqueued_at")) ?? 0
        // The history is for people: an unreadable one is dropped, never the message.
        self.failures = fields["errors"].map(AttemptFailure.decode) ?? []
    }
}

/// A stream entry that is not a well-formed Leasehold message.
public struct StreamEntryDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public var stream: String
    /// `nil` only when not even the ID could be read.
    public var entryID: String?
    public var reason: String

    public var description: String {
        "undecodable entry \(entryID ?? "?") on \(stream): \(reason)"
    }
}
