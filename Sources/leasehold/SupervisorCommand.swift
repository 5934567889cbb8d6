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

    @Option(help: Settings.Supervisor.visibilityTimeout.help)
    var visibilityTimeoutMs: Int?

    @Option(help: Settings.Supervisor.leaderTTL.help)
    var leaderTTLMs: Int?

    @Option(help: Settings.Supervisor.interval.help)
    var intervalMs: Int?

    @Option(help: Settings.Supervisor.inboxRetention.help)
    var inboxRetentionHours: Int?

    @Option(help: Settings.Supervisor.consumerIdleTimeout.help)
    var consumerIdleMs: Int?

    @Option(help: Settings.Supervisor.sampleInterval.help)
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
            visibilityTimeout: try Settings.Supervisor.visibilityTimeout.resolve(visibilityTimeoutMs),
            interval: try Settings.Supervisor.interval.resolve(intervalMs),
            retryPolicy: try common.retryPolicy(),
            inboxRetention: try Settings.Supervisor.inboxRetention.resolve(inboxRetentionHours),
            leader: LeaderElector.Configuration(ttl: try Settings.Supervisor.leaderTTL.resolve(leaderTTLMs)),
            consumerIdleTimeout: try Settings.Supervisor.consumerIdleTimeout.resolve(consumerIdleMs),
            sampleInterval: try Settings.Supervisor.sampleInterval.resolve(sampleIntervalMs))

        let redis = RedisClient(
            configuration: try common.redisConfiguration(), label: "leasehold.supervisor.redis")
        let postgres = PostgresClient(configuration: common.postgresConfiguration(role: "supervisor"), size: 2)
        let elector = LeaderElector(redis: redis, keys: keys, configuration: configuration.leader, logger: logger)
        let maintenance = SupervisorService(
            configuration: configuration, elector: elector, redis: redis, postgres: postgres, logger: logger)
        var services: [any Service] = [redis, postgres, elector, maintenance]
        if let endpoint = try common.metricsEndpoint(
            registry: registry, role: "supervisor", logger: logger,
            dependencies: [.postgres(postgres), .redis(redis)],
            ready: {
                (try? await redis.send("PING")) != nil
            })
        {
            services.append(endpoint)
        }
        try await runServiceGroup(services, logger: logger)
    }
}
