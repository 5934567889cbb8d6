import ArgumentParser
import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdRuntime
import LeaseholdSupervisor
import Metrics
import Prometheus
import ServiceLifecycle

/// `leasehold supervisor`: leader-elected maintenance.
struct SupervisorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "supervisor",
        abstract: "Reclaim stalled entries, retry with backoff, dead-letter, trim streams (one leader at a time).",
        discussion: """
            Run several; they elect one leader through the Redis lease lh:leader (renewed every third of its \
            TTL; a leader that cannot renew in time steps down before its lease could be taken). The leader, \
            every interval: reclaims entries pending longer than the visibility timeout whose lease is not held \
            (a live worker's heartbeat renews its lease and resets its entry's idle time, so its entries are \
            left alone; the pending list is walked with a cursor, a batch per pass) and schedules their retry \
            or dead-letters them after the retry policy's maximum attempts; moves due retries back to their \
            streams; trims streams never past the oldest pending or undelivered entry; removes consumers of the \
            group idle past the consumer idle time that own no pending entry (each worker restart adds one); \
            prunes inbox rows past the retention; records a backlog and throughput sample every sample interval. \
            Every failed attempt, a reclaimed one included ("worker … \
            stopped responding"), is kept with the message through its retries and in its dead letter. \
            SIGTERM or SIGINT: finish the pass, release the leader lease, exit 0.
            """ + "\n\n" + CommonOptions.retryPolicyHelp + "\n\n" + CommonOptions.metricsEndpointHelp
    )

    @OptionGroup var common: CommonOptions

    @Option(
        help: "Reclaim entries unacknowledged this long, in ms (env: LEASEHOLD_VISIBILITY_TIMEOUT_MS; default 60000).")
    var visibilityTimeoutMs: Int?

    @Option(help: "Leader lease TTL in ms (env: LEASEHOLD_LEADER_TTL_MS; default 10000).")
    var leaderTTLMs: Int?

    @Option(help: "Pause between maintenance passes in ms (env: LEASEHOLD_SUPERVISOR_INTERVAL_MS; default 1000).")
    var intervalMs: Int?

    @Option(help: "Delete inbox rows older than this many hours (env: LEASEHOLD_INBOX_RETENTION_HOURS; default 168).")
    var inboxRetentionHours: Int?

    @Option(
        help: """
            Remove consumers idle this long, in ms, that own no pending entry \
            (env: LEASEHOLD_CONSUMER_IDLE_MS; default 3600000).
            """)
    var consumerIdleMs: Int?

    @Option(
        help: """
            Record a backlog and throughput sample (the ops console's chart; the last 120 are kept in \
            lh:samples) this often, in ms (env: LEASEHOLD_SAMPLE_INTERVAL_MS; default 30000).
            """)
    var sampleIntervalMs: Int?

    func run() async throws {
        let logger = try common.bootstrapLogging(label: "leasehold.supervisor")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        LogOutput.standardError.countDropsInMetrics()
        let keys = common.redisKeys
        let configuration = SupervisorConfiguration(
            keys: keys,
            consumerName: "supervisor-\(ProcessInfo.processInfo.processIdentifier)",
            visibilityTimeout: try Setting.milliseconds(
                visibilityTimeoutMs, "LEASEHOLD_VISIBILITY_TIMEOUT_MS", default: 60_000, range: 100...86_400_000),
            interval: try Setting.milliseconds(
                intervalMs, "LEASEHOLD_SUPERVISOR_INTERVAL_MS", default: 1_000, range: 10...600_000),
            retryPolicy: try common.retryPolicy(),
            inboxRetention: .seconds(
                3600
                    * (try Setting.int(
                        inboxRetentionHours, "LEASEHOLD_INBOX_RETENTION_HOURS", default: 168, range: 1...87_600))),
            leader: LeaderElector.Configuration(
                ttl: try Setting.milliseconds(
                    leaderTTLMs, "LEASEHOLD_LEADER_TTL_MS", default: 10_000, range: 300...600_000)),
            consumerIdleTimeout: try Setting.milliseconds(
                consumerIdleMs, "LEASEHOLD_CONSUMER_IDLE_MS", default: 3_600_000, range: 1_000...2_592_000_000),
            sampleInterval: try Setting.milliseconds(
                sampleIntervalMs, "LEASEHOLD_SAMPLE_INTERVAL_MS", default: 30_000, range: 100...3_600_000))

        let redis = RedisClient(
            configuration: try common.redisConfiguration(), label: "leasehold.supervisor.redis")
        let postgres = PostgresClient(configuration: common.postgresConfiguration(role: "supervisor"), size: 2)
        let elector = LeaderElector(redis: redis, keys: keys, configuration: configuration.leader, logger: logger)
        let maintenance = SupervisorService(
            configuration: configuration, elector: elector, redis: redis, postgres: postgres, logger: logger)
        var services: [any Service] = [elector, maintenance]
        if let endpoint = try common.metricsEndpoint(
            registry: registry, role: "supervisor", logger: logger,
            ready: {
                (try? await redis.send("PING")) != nil
            })
        {
            services.append(endpoint)
        }
        try await runServices(services, logger: logger) {
            redis.close()
            await postgres.close()
        }
    }
}
