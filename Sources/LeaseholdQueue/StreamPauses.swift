import Foundation
import LeaseholdRedis

/// Pausing and resuming streams: during an incident (a payment bug, a migration) an operator
/// stops the processing of one source, say `yookassa`, while the others go on, without stopping a
/// process and without losing what arrives.
///
/// A pause is one key per stream (``RedisKeys/pause(of:)``) holding who paused it, when and why.
/// While it is set:
/// - workers claim nothing from the stream: their read script checks the key before each
///   `XREADGROUP`, so no entry is claimed after the pause is set; what they already hold they
///   finish (``StreamConsumer``);
/// - ingress keeps accepting: the backlog grows up to the high-water mark, then ingress answers
///   the documented 503;
/// - the supervisor neither reclaims the stream's pending entries (so nothing is retried or
///   dead-lettered for having waited) nor moves due retries onto it (``RetryScheduler``).
///
/// Resuming deletes the keys; workers read the stream again from where the group left it, in
/// order, by their next read (within their read's wait, a second by default). A pause lives in
/// Redis, so it survives the restart of every role (and of Redis, with its persistence).
public struct StreamPauses: Sendable {
    /// Who paused a stream, when and why.
    public struct Pause: Sendable, Codable, Equatable {
        public var by: String
        public var at: Date
        public var reason: String

        public init(by: String, at: Date, reason: String) {
            self.by = by
            self.at = at
            self.reason = reason
        }
    }

    public let keys: RedisKeys

    public init(keys: RedisKeys) {
        self.keys = keys
    }

    /// Pauses every stream of `source` (every shard). Pausing a paused stream replaces its record.
    public func pause(source: String, _ pause: Pause, via runner: some RedisCommandRunner) async throws {
        let value = String(decoding: try Self.encoder.encode(pause), as: UTF8.self)
        for stream in keys.streams(source) {
            try await runner.send("SET", keys.pause(of: stream), value)
        }
    }

    /// Resumes every stream of `source`; `true` when any was paused.
    @discardableResult
    public func resume(source: String, via runner: some RedisCommandRunner) async throws -> Bool {
        var removed = false
        for stream in keys.streams(source) {
            removed = (try await runner.send("DEL", keys.pause(of: stream)).int ?? 0) > 0 || removed
        }
        return removed
    }

    /// The pause of each paused stream among `streams`, by stream. A record that does not decode
    /// (written by hand) still counts as a pause.
    public func paused(_ streams: [String], via runner: some RedisCommandRunner) async throws -> [String: Pause] {
        var paused: [String: Pause] = [:]
        for stream in streams {
            let reply = try await runner.send("GET", keys.pause(of: stream))
            guard let text = reply.string else { continue }
            paused[stream] =
                (try? Self.decoder.decode(Pause.self, from: Data(text.utf8)))
                ?? Pause(by: "?", at: Date(timeIntervalSince1970: 0), reason: text)
        }
        return paused
    }

    /// The sources a pause target names: a source (`yookassa`), a stream key of one, a message
    /// kind (`booking`: the sources that carry it), or `all`. `nil` for anything else.
    public func sources(named target: String) -> [String]? {
        if target == "all" { return RedisKeys.sources }
        if RedisKeys.sources.contains(target) { return [target] }
        if let kind = Self.kindSources[target] { return kind }
        return RedisKeys.sources.filter { keys.streams($0).contains(target) }.nilIfEmpty
    }

    /// The sources that carry each message kind.
    public static let kindSources = ["booking": ["telegram", "bookings"], "yookassa.notification": ["yookassa"]]

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}

extension Array {
    fileprivate var nilIfEmpty: Self? { isEmpty ? nil : self }
}
