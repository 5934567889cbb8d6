import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis

/// Everything the console's overview page shows, read in one go.
public struct ConsoleOverview: Sendable {
    /// What `leasehold status` prints.
    public var status: QueueStatus
    /// The consumers of each stream's group, by stream key.
    public var consumers: [String: [QueueStatus.Consumer]]
    /// When the earliest parked retry is due.
    public var nextRetryDue: Date?
    public var deadByKind: [(value: String, count: Int64)]
    public var deadByError: [(value: String, count: Int64)]
    /// Bot replies waiting (pending or being sent) and failed for good.
    public var outboxPending: Int64
    public var outboxFailed: Int64
    /// Inbox rows written in the last minute.
    public var processedLastMinute: Int64
    /// End-to-end latency of those rows, accepted to committed; `nil` when there are none.
    public var latencyLastMinute: Latency?
    /// The supervisor leader's samples of the last hour, oldest first.
    public var samples: [ThroughputSampler.Sample]
    public var recentActions: [ConsoleAuditLog.Action]

    /// Percentiles of the time from an entry's XADD (the millisecond part of its stream ID: when
    /// ingress accepted it, or when a retry put it back) to its transaction (the inbox row's
    /// `processed_at`), in seconds: what the dashboard's end-to-end panel shows, without Prometheus.
    public struct Latency: Sendable, Equatable {
        public var p50: Double
        public var p99: Double
        public var p999: Double

        public init(p50: Double, p99: Double, p999: Double) {
            self.p50 = p50
            self.p99 = p99
            self.p999 = p999
        }

        /// The query: one sort of the last minute's rows (the `processed_at` index finds them).
        /// Rows without a stream ID of the usual form (none are written without one) are left out.
        static let query: PostgresQuery = """
            SELECT p[1], p[2], p[3] FROM (
                SELECT percentile_cont(ARRAY[0.5, 0.99, 0.999]) WITHIN GROUP (
                    ORDER BY extract(epoch FROM processed_at) - split_part(entry_id, '-', 1)::bigint / 1000.0) AS p
                FROM inbox
                WHERE processed_at > now() - interval '1 minute' AND entry_id ~ '^[0-9]{1,15}-[0-9]+$'
            ) AS percentiles
            """

        public static func read(postgres: PostgresClient) async throws -> Latency? {
            let (p50, p99, p999) = try await postgres.query(query).single().decode(
                Double?.self, Double?.self, Double?.self)
            guard let p50, let p99, let p999 else { return nil }
            return Latency(p50: p50, p99: p99, p999: p999)
        }
    }

    public static func read(
        configuration: ConsoleConfiguration, now: Date = Date(), redis: RedisClient, postgres: PostgresClient
    ) async throws -> ConsoleOverview {
        let keys = configuration.keys
        let status = try await QueueStatus.read(
            keys: keys, sources: configuration.sources, now: now, redis: redis, postgres: postgres)
        var consumers: [String: [QueueStatus.Consumer]] = [:]
        for stream in status.streams {
            consumers[stream.stream] = try await QueueStatus.consumers(of: stream.stream, redis: redis)
        }
        let nextDue = try await RetryScheduler(keys: keys, streams: keys.streams(configuration.sources)).oldestDue(
            via: redis)
        let query = DeadLetterQuery()
        let outbox = try await postgres.query(
            """
            SELECT (SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')),
                   (SELECT count(*) FROM outbox WHERE status = 'failed'),
                   (SELECT count(*) FROM inbox WHERE processed_at > now() - interval '1 minute')
            """
        ).single().decode(Int64.self, Int64.self, Int64.self)
        let hourAgo = Int64((now.timeIntervalSince1970 - 3600) * 1000)
        return ConsoleOverview(
            status: status, consumers: consumers, nextRetryDue: nextDue,
            deadByKind: try await query.deadCounts(by: .kind, postgres: postgres),
            deadByError: try await query.deadCounts(by: .lastError, limit: 10, postgres: postgres),
            outboxPending: outbox.0, outboxFailed: outbox.1, processedLastMinute: outbox.2,
            latencyLastMinute: try await Latency.read(postgres: postgres),
            samples: try await ThroughputSampler.samples(keys: keys, redis: redis).filter { $0.at >= hourAgo },
            recentActions: try await ConsoleAuditLog().recent(limit: 10, postgres: postgres))
    }
}
