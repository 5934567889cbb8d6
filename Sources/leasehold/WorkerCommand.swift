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

    @Option(help: Settings.Worker.concurrency.help)
    var concurrency: Int?

    @Option(help: Settings.Worker.leaseTTL.help)
    var leaseTTLMs: Int?

    @Option(help: Settings.Worker.drainTimeout.help)
    var drainTimeoutMs: Int?

    @Option(help: Settings.Worker.lockTimeout.help)
    var lockTimeoutMs: Int?

    @Option(help: Settings.Worker.statementTimeout.help)
    var statementTimeoutMs: Int?

    @Option(help: Settings.Worker.outageWindow.help)
    var outageWindowMs: Int?

    @Option(help: Settings.Worker.consumerName.help)
    var consumerName: String?

    @Option(help: Settings.Worker.oneBookingPerUser.help)
    var oneBookingPerUser: Bool?

    func run() async throws {
        let logger = try common.bootstrapLogging(label: "leasehold.worker")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        LogOutput.standardError.countDropsInMetrics()
        let configuration = WorkerConfiguration(
            keys: common.redisKeys,
            consumerName: Settings.Worker.consumerName.resolve(consumerName),
            concurrency: try Settings.Worker.concurrency.resolve(concurrency),
            leaseTTL: try Settings.Worker.leaseTTL.resolve(leaseTTLMs),
            drainTimeout: try Settings.Worker.drainTimeout.resolve(drainTimeoutMs),
            rules: BookingRules(onePerUser: try Settings.Worker.oneBookingPerUser.resolve(oneBookingPerUser)),
            retryPolicy: try common.retryPolicy(),
            lockTimeout: try Settings.Worker.lockTimeout.resolve(lockTimeoutMs),
            statementTimeout: try Settings.Worker.statementTimeout.resolve(statementTimeoutMs),
            outageWindow: try Settings.Worker.outageWindow.resolve(outageWindowMs))

        var postgresConfiguration = common.postgresConfiguration(role: "worker")
        postgresConfiguration.defaultParameters.append(configuration.postgresSessionOptions)
        // The dead letters' pool (rarely used) and the handlers' pool, one connection per slot,
        // both on the worker's reactor thread.
        let reactor = Reactor(label: "leasehold.worker")
        let deadLetterDatabase = PostgresClient(configuration: postgresConfiguration, reactor: reactor, size: 2)
        let database = PostgresClient(
            configuration: postgresConfiguration, reactor: reactor, size: configuration.concurrency)
        let redisConfiguration = try common.redisConfiguration()
        // Leases, heartbeats, completions, retries and dead letters on one non-blocking connection,
        // the read's blocking wait on another, both on the reactor.
        let redis = RedisClient(configuration: redisConfiguration, reactor: reactor, size: 1)
        let readWait = RedisClient(configuration: redisConfiguration, reactor: reactor, size: 1)
        let worker = WorkerService(
            configuration: configuration, deadLetterDatabase: deadLetterDatabase, database: database, redis: redis,
            readWait: readWait, logger: logger)
        var services: [any Service] = [reactor, deadLetterDatabase, database, redis, readWait, worker]
        if let endpoint = try common.metricsEndpoint(
            registry: registry, role: "worker", logger: logger,
            dependencies: [.postgres(deadLetterDatabase), .redis(redis)],
            ready: {
                guard worker.isReading else { return false }
                do {
                    _ = try await redis.send("PING")
                    return true
                } catch {
                    logger.warning("not ready: Redis does not answer", metadata: ["error": "\(error)"])
                    return false
                }
            })
        {
            services.append(endpoint)
        }
        try await runServiceGroup(services, logger: logger)
    }
}
