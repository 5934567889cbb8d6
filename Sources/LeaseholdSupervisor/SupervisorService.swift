import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import Logging
import Metrics
import ServiceLifecycle

/// The supervisor's maintenance, done only while this process is the leader (``LeaderElector``):
/// every ``SupervisorConfiguration/interval``, per stream,
///
/// 1. reclaim stalled entries (``Reclaimer``): retry later or dead-letter;
/// 2. move due retries back to their streams (``RetryScheduler``);
/// 3. trim acknowledged entries (``StreamTrimmer``);
/// 4. remove consumers idle past ``SupervisorConfiguration/consumerIdleTimeout`` that own no
///    pending entry (``ConsumerReaper``);
///
/// and prune inbox rows older than the retention, and every ``SupervisorConfiguration/sampleInterval``
/// record a backlog and throughput sample (``ThroughputSampler``). Every step is idempotent, so a pass cut short
/// (leadership lost, crash) is simply done again by the next leader.
public struct SupervisorService: Service {
    public let configuration: SupervisorConfiguration
    private let elector: LeaderElector
    private let redis: RedisClient
    private let postgres: PostgresClient
    private let logger: Logger

    public init(
        configuration: SupervisorConfiguration, elector: LeaderElector, redis: RedisClient,
        postgres: PostgresClient,
        logger: Logger
    ) {
        self.configuration = configuration
        self.elector = elector
        self.redis = redis
        self.postgres = postgres
        self.logger = logger
    }

    public func run() async throws {
        let reclaimer = Reclaimer(
            configuration: configuration, redis: redis, postgres: postgres,
            scheduler: RetryScheduler(keys: configuration.keys, streams: configuration.streams),
            deadLetters: DeadLetterStore(keys: configuration.keys),
            logger: logger)
        let trimmer = StreamTrimmer(redis: redis)
        let reaper = ConsumerReaper(redis: redis, idleTimeout: configuration.consumerIdleTimeout, logger: logger)
        var lastPrune = ContinuousClock.now - .seconds(3600)
        let sampler = ThroughputSampler(
            keys: configuration.keys, sources: configuration.sources, interval: configuration.sampleInterval)
        var lastSample: ContinuousClock.Instant?
        let isLeaderGauge = Gauge(label: "leasehold_supervisor_is_leader")
        // At 0 from the start: a series that appears with its first increment has no earlier
        // sample for rate() or increase() to compare with, so an alert on it would miss the first.
        for stream in configuration.streams {
            for label in [
                "leasehold_supervisor_retries_scheduled_total", "leasehold_supervisor_dead_letters_total",
                "leasehold_supervisor_consumers_removed_total",
            ] {
                _ = Counter(label: label, dimensions: [("stream", stream)])
            }
        }
        var groupsExist = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            isLeaderGauge.record(elector.isLeader ? 1 : 0)
            if elector.isLeader {
                do {
                    if !groupsExist {
                        // A fresh Redis (or one that lost its data) has no streams or groups until
                        // a worker starts, and every pass would fail on NOGROUP: create them as a
                        // worker does (from 0, so nothing written before is skipped). Again after
                        // any failed pass.
                        try await StreamConsumer(streams: configuration.streams, consumer: "supervisor")
                            .ensureGroups(via: redis)
                        groupsExist = true
                    }
                    // On the Redis client's reactor: the pass's Redis calls (three per stalled
                    // entry) go straight to the socket instead of hopping there one by one.
                    try await redis.withReactor { _ in
                        try await pass(reclaimer: reclaimer, trimmer: trimmer, reaper: reaper)
                    }
                    if ContinuousClock.now - lastPrune > .seconds(60) {
                        try await pruneInbox()
                        lastPrune = ContinuousClock.now
                    }
                    if lastSample.map({ ContinuousClock.now - $0 >= configuration.sampleInterval }) ?? true {
                        lastSample = ContinuousClock.now
                        try await sampler.record(redis: redis, postgres: postgres)
                    }
                } catch {
                    groupsExist = false
                    logger.error("maintenance pass failed; next pass retries", metadata: ["error": "\(error)"])
                }
            }
            try? await Task.sleep(for: configuration.interval)
        }
    }

    /// One maintenance pass over every stream.
    func pass(reclaimer: Reclaimer, trimmer: StreamTrimmer, reaper: ConsumerReaper) async throws {
        let scheduler = RetryScheduler(keys: configuration.keys, streams: configuration.streams)
        // A paused stream's entries are neither reclaimed (nor so retried or dead-lettered for
        // having waited) nor do due retries go back onto it, until it is resumed.
        let paused = Set(
            try await StreamPauses(keys: configuration.keys).paused(configuration.streams, via: redis).keys)
        for stream in configuration.streams {
            guard elector.isLeader else { return }
            Gauge(label: "leasehold_stream_paused", dimensions: [("stream", stream)]).record(
                paused.contains(stream) ? 1 : 0)
            guard !paused.contains(stream) else { continue }
            _ = try await reclaimer.reclaim(stream: stream)
        }
        while elector.isLeader {
            let moved = try await scheduler.moveDue(now: Date(), limit: 500, skipping: paused, via: redis)
            if moved > 0 { logger.info("due retries back on their streams", metadata: ["count": "\(moved)"]) }
            if moved < 500 { break }
        }
        for stream in configuration.streams {
            guard elector.isLeader else { return }
            let trimmed = try await trimmer.trim(stream: stream)
            if trimmed > 0 { logger.debug("trimmed", metadata: ["stream": "\(stream)", "entries": "\(trimmed)"]) }
            try await recordGauges(stream: stream, scheduler: scheduler)
        }
        for stream in configuration.streams {
            guard elector.isLeader else { return }
            _ = try await reaper.reap(stream: stream)
        }
    }

    private func recordGauges(stream: String, scheduler: RetryScheduler) async throws {
        let length = try await redis.send("XLEN", stream).int ?? 0
        Gauge(label: "leasehold_stream_length", dimensions: [("stream", stream)]).record(length)
        let summary = try await redis.send("XPENDING", stream, RedisKeys.consumerGroup)
        let pending = summary.array?.first?.int ?? 0
        Gauge(label: "leasehold_stream_pending", dimensions: [("stream", stream)]).record(pending)
        // Entries no worker has read yet: the group's lag, or, when Redis cannot tell (entries
        // deleted under the group), the length less the pending entries (which then also counts
        // acknowledged entries not yet trimmed). No group yet: the whole stream.
        let group = try await ConsumerGroupInfo.read(stream: stream, redis: redis)
        let undelivered = group.map { $0.lag ?? max(0, length - pending) } ?? length
        Gauge(label: "leasehold_stream_undelivered", dimensions: [("stream", stream)]).record(undelivered)
        // The oldest pending entry's age, from its ID (the XADD time in milliseconds).
        var oldestAge = 0.0
        if let oldest = summary.array?.dropFirst().first?.string,
            let milliseconds = Double(oldest.split(separator: "-").first ?? "")
        {
            oldestAge = max(0, Date().timeIntervalSince1970 - milliseconds / 1000)
        }
        Gauge(label: "leasehold_stream_oldest_pending_age_seconds", dimensions: [("stream", stream)]).record(oldestAge)
        let backlog = try await scheduler.backlog(via: redis)
        Gauge(label: "leasehold_retry_backlog").record(backlog)
    }

    /// Deletes inbox rows older than the retention, in batches.
    private func pruneInbox() async throws {
        let seconds = Double(configuration.inboxRetention.components.seconds)
        while elector.isLeader {
            let deleted = try await postgres.execute(
                """
                DELETE FROM inbox WHERE message_key IN (
                    SELECT message_key FROM inbox WHERE processed_at < now() - make_interval(secs => \(seconds))
                    LIMIT 5000)
                """)
            if deleted > 0 { logger.info("pruned inbox rows past retention", metadata: ["rows": "\(deleted)"]) }
            if deleted < 5000 { return }
        }
    }
}
