import ArgumentParser
import Foundation
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdReactor
import LeaseholdRedis
import LeaseholdRuntime
import LeaseholdWorker
import Metrics
import Prometheus
import ServiceLifecycle

/// `leasehold worker`: consumes the streams and runs one transaction per entry.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Claim stream entries, take a lease, run one PostgreSQL transaction each, then acknowledge.",
        discussion: """
            Joins consumer group "workers" on the telegram, yookassa and bookings streams (creating it if \
            missing) and takes no more entries than it has free slots, over all streams together. \
            Before its first read it opens one PostgreSQL connection per slot and warms each up (a booking \
            and a payment of throwaway rows, rolled back, so the server has compiled the functions and \
            planned their statements before the first burst; a failure is one warning per kind); \
            /readyz answers 503 until then. \
            An entry is acknowledged only after its transaction committed. A failed transaction \
            is never acknowledged as done: its entry is parked in the retry schedule (with the next attempt, \
            atomically) or, after LEASEHOLD_RETRY_MAX_ATTEMPTS, dead-lettered; a payload that can never succeed \
            (undecodable, unknown kind) is dead-lettered at once. While PostgreSQL or Redis is unreachable, an \
            entry keeps its lease and is tried again with backoff (100 ms doubling to 5 s) without spending an \
            attempt, for up to the outage window. SIGTERM or SIGINT: stop reading, let in-flight entries finish \
            within the drain timeout counted from the signal (then cancel and roll back the rest, leaving them \
            pending with no attempt spent), release leases, exit 0.
            """ + "\n\n" + CommonOptions.retryPolicyHelp + "\n\n" + CommonOptions.metricsEndpointHelp
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Entries processed at once (env: LEASEHOLD_WORKER_CONCURRENCY; default 16).")
    var concurrency: Int?

    @Option(help: "Lease TTL in ms, renewed every third of it (env: LEASEHOLD_LEASE_TTL_MS; default 30000).")
    var leaseTTLMs: Int?

    @Option(help: "SIGTERM drain timeout in ms (env: LEASEHOLD_DRAIN_TIMEOUT_MS; default 20000).")
    var drainTimeoutMs: Int?

    @Option(help: "Per-transaction lock_timeout in ms (env: LEASEHOLD_LOCK_TIMEOUT_MS; default 5000).")
    var lockTimeoutMs: Int?

    @Option(help: "Per-transaction statement_timeout in ms (env: LEASEHOLD_STATEMENT_TIMEOUT_MS; default 30000).")
    var statementTimeoutMs: Int?

    @Option(
        help: """
            How long, in ms, an entry waits out a PostgreSQL or Redis outage (connection errors) before it counts \
            as a failed attempt (env: LEASEHOLD_OUTAGE_WINDOW_MS; default 3600000).
            """)
    var outageWindowMs: Int?

    @Option(
        help: "Consumer name in the group; unique per process (env: LEASEHOLD_CONSUMER_NAME; default host-pid-random).")
    var consumerName: String?

    @Option(
        help:
            "At most one active interview per user: true or false (env: LEASEHOLD_ONE_BOOKING_PER_USER; default true).")
    var oneBookingPerUser: Bool?

    func run() async throws {
        let logger = try common.bootstrapLogging(label: "leasehold.worker")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        LogOutput.standardError.countDropsInMetrics()
        let configuration = WorkerConfiguration(
            keys: common.redisKeys,
            consumerName: Setting.string(
                consumerName, "LEASEHOLD_CONSUMER_NAME", default: WorkerConfiguration.defaultConsumerName()),
            concurrency: try Setting.int(concurrency, "LEASEHOLD_WORKER_CONCURRENCY", default: 16, range: 1...1024),
            leaseTTL: try Setting.milliseconds(
                leaseTTLMs, "LEASEHOLD_LEASE_TTL_MS", default: 30_000, range: 300...3_600_000),
            drainTimeout: try Setting.milliseconds(
                drainTimeoutMs, "LEASEHOLD_DRAIN_TIMEOUT_MS", default: 20_000, range: 0...3_600_000),
            rules: BookingRules(
                onePerUser: try Setting.bool(oneBookingPerUser, "LEASEHOLD_ONE_BOOKING_PER_USER", default: true)),
            retryPolicy: try common.retryPolicy(),
            lockTimeout: try Setting.milliseconds(
                lockTimeoutMs, "LEASEHOLD_LOCK_TIMEOUT_MS", default: 5_000, range: 1...3_600_000),
            statementTimeout: try Setting.milliseconds(
                statementTimeoutMs, "LEASEHOLD_STATEMENT_TIMEOUT_MS", default: 30_000, range: 1...3_600_000),
            outageWindow: try Setting.milliseconds(
                outageWindowMs, "LEASEHOLD_OUTAGE_WINDOW_MS", default: 3_600_000, range: 0...86_400_000))

        var postgresConfiguration = common.postgresConfiguration(role: "worker")
        postgresConfiguration.defaultParameters.append(configuration.postgresSessionOptions)
        // The dead letters' pool (rarely used) and the handlers' pool, one connection per slot,
        // both on the worker's reactor thread.
        let reactor = Reactor(label: "leasehold.worker")
        let postgres = PostgresClient(configuration: postgresConfiguration, reactor: reactor, size: 2)
        let database = PostgresClient(
            configuration: postgresConfiguration, reactor: reactor, size: configuration.concurrency)
        let redisConfiguration = try common.redisConfiguration()
        // Leases, heartbeats, completions, retries and dead letters on one non-blocking connection,
        // the read's blocking wait on another, both on the reactor.
        let reactorRedis = RedisClient(configuration: redisConfiguration, reactor: reactor, size: 1)
        let reader = RedisClient(configuration: redisConfiguration, reactor: reactor, size: 1)
        let worker = WorkerService(
            configuration: configuration, postgres: postgres, database: database, reactorRedis: reactorRedis,
            reader: reader, logger: logger)
        var services: [any Service] = [worker]
        if let endpoint = try common.metricsEndpoint(
            registry: registry, role: "worker", logger: logger,
            ready: {
                guard worker.isReading else { return false }
                do {
                    _ = try await reactorRedis.send("PING")
                    return true
                } catch {
                    logger.warning("not ready: Redis does not answer", metadata: ["error": "\(error)"])
                    return false
                }
            })
        {
            services.append(endpoint)
        }
        try await runServices(services, logger: logger) {
            await postgres.close()
            await withTaskExecutorPreference(reactor) {
                reader.close()
                reactorRedis.close()
                await database.close()
            }
            reactor.shutDown()
        }
    }
}
