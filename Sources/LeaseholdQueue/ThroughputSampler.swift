import Foundation
import LeaseholdCore
import LeaseholdPostgres
import LeaseholdRedis

/// Backlog and throughput over time, for the ops console's chart: the supervisor leader records
/// one ``Sample`` every ``interval`` into the Redis list ``RedisKeys/samples`` (`lh:samples`),
/// newest first, capped at ``capacity`` entries (`LPUSH` + `LTRIM` in one Lua script), so the list
/// never grows and holds the last `capacity × interval` (an hour by default).
///
/// Only the leader samples, so there is one series however many supervisors run; a leader change
/// at most skips or repeats one interval.
public struct ThroughputSampler: Sendable {
    /// One point of the series.
    public struct Sample: Sendable, Codable, Equatable {
        /// When it was taken, in milliseconds since 1970.
        public var at: Int64
        /// Entries waiting: pending plus undelivered over every stream, plus parked retries.
        public var backlog: Int64
        /// Messages processed (inbox rows written) during the ``intervalSeconds`` before `at`.
        public var processed: Int64
        public var intervalSeconds: Double

        public init(at: Int64, backlog: Int64, processed: Int64, intervalSeconds: Double) {
            self.at = at
            self.backlog = backlog
            self.processed = processed
            self.intervalSeconds = intervalSeconds
        }

        public var date: Date { Date(timeIntervalSince1970: Double(at) / 1000) }

        /// Processed messages per minute over the sample's interval.
        public var processedPerMinute: Double {
            intervalSeconds > 0 ? Double(processed) * 60 / intervalSeconds : 0
        }
    }

    public let keys: RedisKeys
    public let sources: [String]
    /// Time between two samples.
    public let interval: Duration
    /// Samples kept.
    public let capacity: Int

    public init(
        keys: RedisKeys, sources: [String] = QueueStatus.defaultSources, interval: Duration = .seconds(30),
        capacity: Int = 120
    ) {
        self.keys = keys
        self.sources = sources
        self.interval = interval
        self.capacity = max(1, capacity)
    }

    /// Takes a sample now and records it.
    @discardableResult
    public func record(redis: some RedisCommandRunner, postgres: PostgresClient, now: Date = Date()) async throws
        -> Sample
    {
        let status = try await QueueStatus.read(
            keys: keys, sources: sources, now: now, redis: redis, postgres: postgres)
        let backlog = status.streams.reduce(status.retryBacklog) { $0 + $1.pending + ($1.undelivered ?? 0) }
        let seconds = interval.seconds
        let processed = try await postgres.query(
            "SELECT count(*) FROM inbox WHERE processed_at > now() - make_interval(secs => \(seconds))"
        ).single().decode(Int64.self, at: 0)
        let sample = Sample(
            at: Int64(now.timeIntervalSince1970 * 1000), backlog: backlog, processed: processed,
            intervalSeconds: seconds)
        let json = String(decoding: try JSONEncoder().encode(sample), as: UTF8.self)
        _ = try await redis.evaluate(Self.recordScript, keys: [keys.samples], arguments: [json, capacity])
        return sample
    }

    // KEYS: the samples list. ARGV: the sample, the capacity. Push and cap in one step (a script
    // of one key: on a Redis Cluster a MULTI block could not be sent to one node with its keys).
    static let recordScript = RedisScript(
        """
        redis.call('LPUSH', KEYS[1], ARGV[1])
        redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
        return 1
        """)

    /// The recorded samples, oldest first (unreadable ones skipped).
    public static func samples(keys: RedisKeys, redis: some RedisCommandRunner) async throws -> [Sample] {
        let reply = try await redis.send("LRANGE", keys.samples, "0", "-1")
        let decoder = JSONDecoder()
        return (reply.array ?? []).reversed().compactMap { item in
            item.bytes.flatMap { try? decoder.decode(Sample.self, from: Data($0)) }
        }
    }
}
