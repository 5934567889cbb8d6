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
    /// The supervisor leader's samples of the last hour, oldest first.
    public var samples: [ThroughputSampler.Sample]
    public var recentActions: [ConsoleAuditLog.Action]

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
            samples: try await ThroughputSampler.samples(keys: keys, redis: redis).filter { $0.at >= hourAgo },
            recentActions: try await ConsoleAuditLog().recent(limit: 10, postgres: postgres))
    }
}
