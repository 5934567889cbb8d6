import Foundation
import LeaseholdPostgres
import LeaseholdRedis

/// The queue at a glance: what `leasehold status` prints and the ops console's overview shows.
///
/// Per stream its length, pending (delivered, unacknowledged) entries, the oldest pending entry's
/// age, undelivered entries, the consumer group's consumers and whether it is paused; the retry schedule; the number of
/// dead letters still `dead`; the supervisor leader.
public struct QueueStatus: Sendable, Codable, Equatable {
    /// One stream's state.
    public struct Stream: Sendable, Codable, Equatable {
        public var stream: String
        public var length: Int64
        public var pending: Int64
        public var oldestPendingAgeSeconds: Double?
        /// `nil` when Redis cannot tell (entries were deleted past the group's position); the
        /// length when no consumer group exists yet.
        public var undelivered: Int64?
        public var consumers: Int64
        /// Who paused the stream, when and why; `nil` while it is processed (``StreamPauses``).
        public var paused: StreamPauses.Pause?

        enum CodingKeys: String, CodingKey {
            case stream, length, pending, undelivered, consumers, paused
            case oldestPendingAgeSeconds = "oldest_pending_age_seconds"
        }
    }

    /// A consumer of the `workers` group, as `XINFO CONSUMERS` describes it.
    public struct Consumer: Sendable, Codable, Equatable {
        public var name: String
        public var pending: Int64
        /// Milliseconds since the consumer last read or claimed.
        public var idleMilliseconds: Int64
    }

    public var streams: [Stream]
    public var retryBacklog: Int64
    public var deadLetters: Int64
    public var leader: String?

    enum CodingKeys: String, CodingKey {
        case streams, leader
        case retryBacklog = "retry_backlog"
        case deadLetters = "dead_letters"
    }

    /// The default sources, in the order `leasehold status` lists them.
    public static let defaultSources = ["telegram", "bookings", "yookassa"]

    /// Reads the status of `sources`' streams under `keys` (every shard's, when sharded) from
    /// Redis, and the dead letters from PostgreSQL.
    public static func read(
        keys: RedisKeys, sources: [String] = defaultSources, now: Date = Date(), redis: some RedisCommandRunner,
        postgres: PostgresClient
    ) async throws -> QueueStatus {
        var streams: [Stream] = []
        let paused = try await StreamPauses(keys: keys).paused(keys.streams(sources), via: redis)
        for stream in keys.streams(sources) {
            let length = try await redis.send("XLEN", stream).int ?? 0
            // No group yet (no worker has started): every entry is undelivered, as the group is
            // created at the stream's start.
            var status = Stream(
                stream: stream, length: length, pending: 0, oldestPendingAgeSeconds: nil, undelivered: length,
                consumers: 0, paused: paused[stream])
            if let group = try await ConsumerGroupInfo.read(stream: stream, redis: redis) {
                status.pending = group.pending
                status.consumers = group.consumers
                status.undelivered = group.lag
                let summary = try await redis.send("XPENDING", stream, RedisKeys.consumerGroup)
                if let oldest = summary.array?[1].string, let ms = Double(oldest.split(separator: "-").first ?? "") {
                    status.oldestPendingAgeSeconds = max(0, now.timeIntervalSince1970 - ms / 1000)
                }
            }
            streams.append(status)
        }
        let backlog = Int64(try await RetryScheduler(keys: keys, streams: keys.streams(sources)).backlog(via: redis))
        let leader = try await currentLeader(keys: keys, via: redis)
        let dead = try await postgres.query("SELECT count(*) FROM dead_letters WHERE status = 'dead'")
            .single().decode(Int64.self, at: 0)
        return QueueStatus(streams: streams, retryBacklog: backlog, deadLetters: dead, leader: leader)
    }

    /// The consumers of the `workers` group on `stream` (none when the stream or group is missing).
    public static func consumers(of stream: String, redis: some RedisCommandRunner) async throws -> [Consumer] {
        try await ConsumerInfo.read(stream: stream, via: redis).map {
            Consumer(name: $0.name, pending: $0.pending, idleMilliseconds: $0.idle)
        }
    }

    /// The candidate ID holding the supervisor's leader lease under `keys`, if any.
    public static func currentLeader(keys: RedisKeys, via runner: some RedisCommandRunner) async throws -> String? {
        try await runner.send(RedisCommand(["GET", keys.leader]), timeout: nil).string
    }
}
