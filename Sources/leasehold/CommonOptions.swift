import ArgumentParser
import Foundation
import LeaseholdCore
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdRuntime
import Logging
import Prometheus
import ServiceLifecycle

/// Flags every role shares; each falls back to an environment variable, then to a default.
struct CommonOptions: ParsableArguments {
    @Option(
        name: .customLong("postgres-url"),
        help: "PostgreSQL URL or conninfo; several hosts (db1:5432,db2:5432) for failover (env: POSTGRES_URL).")
    var postgresURLFlag: String?

    @Option(
        name: .customLong("redis-url"),
        help:
            "Redis URL redis://[[user]:password@]host:port/db; several nodes (host1:port1,host2:port2,…/0) for a Redis Cluster, which needs --redis-shards (env: REDIS_URL)."
    )
    var redisURLFlag: String?

    @Option(name: .customLong("log-level"), help: Settings.Common.logLevel.help)
    var logLevelFlag: String?

    @Option(name: .customLong("redis-prefix"), help: Settings.Common.redisPrefix.help)
    var redisPrefixFlag: String?

    @Option(name: .customLong("redis-shards"), help: Settings.Common.redisShards.help)
    var redisShardsFlag: Int?

    private var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// `--help` text for the roles that read ``retryPolicy()`` (worker, supervisor).
    static let retryPolicyHelp = """
        Retry policy, shared by workers and supervisors (environment only): attempt n waits a random time \
        in [d/2, d], d = base·2^(n−1) capped (\(Settings.Common.retryBase.environmentNote)) \
        (\(Settings.Common.retryMaxDelay.environmentNote)); attempt max failing dead-letters \
        (\(Settings.Common.retryMaxAttempts.environmentNote)); per message kind \
        (env: LEASEHOLD_RETRY_OVERRIDES; kind=base_ms:max_delay_ms:max_attempts,...).
        """

    /// `--help` text for the roles that serve ``metricsEndpoint(registry:role:logger:dependencies:ready:)``.
    static let metricsEndpointHelp = """
        GET /metrics, /healthz and /readyz (Redis answers; a worker also only once it is warm and reads) on a port of their own \
        (env: LEASEHOLD_METRICS_PORT; unset: off), listening on (\(Settings.Common.metricsHost.environmentNote)).
        """

    var redisKeys: RedisKeys {
        RedisKeys(
            prefix: Settings.Common.redisPrefix.resolve(redisPrefixFlag),
            shards: (try? redisShards()) ?? nil)
    }

    /// `--redis-shards` or `LEASEHOLD_REDIS_SHARDS`: `nil` (the one-node layout) when neither is
    /// given; checked by ``validate()``.
    func redisShards() throws -> Int? {
        try Settings.Common.redisShards.resolve(redisShardsFlag)
    }

    var postgresURL: String {
        postgresURLFlag ?? environment["POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/leasehold"
    }

    var redisURL: String {
        redisURLFlag ?? environment["REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
    }

    var postgresConfiguration: PostgresConfiguration {
        PostgresConfiguration(connectionString: postgresURL)
    }

    /// The connection settings, named after the role in `pg_stat_activity.application_name`.
    func postgresConfiguration(role: String) -> PostgresConfiguration {
        PostgresConfiguration(connectionString: postgresURL, applicationName: "leasehold-\(role)")
    }

    func redisConfiguration() throws -> RedisConfiguration {
        do {
            return try RedisConfiguration(url: redisURL)
        } catch {
            throw ValidationError(error.description)
        }
    }

    func validate() throws {
        // A cluster refuses the one-node layout's scripts (their keys are in different slots):
        // say so at startup rather than with CROSSSLOT on the first message.
        if try redisShards() == nil, let configuration = try? RedisConfiguration(url: redisURL),
            configuration.listsSeveralNodes
        {
            throw ValidationError(
                "REDIS_URL lists several nodes (a Redis Cluster): set LEASEHOLD_REDIS_SHARDS (or --redis-shards), "
                    + "at least the number of masters, so every key of a message shares its stream's hash slot")
        }
        let level = Settings.Common.logLevel.resolve(logLevelFlag)
        guard Logger.Level(rawValue: level.lowercased()) != nil else {
            throw ValidationError(
                "unknown log level \(level); use trace, debug, info, notice, warning, error or critical")
        }
    }

    /// The retry policy workers and supervisors share (environment only, so every role agrees):
    /// `LEASEHOLD_RETRY_BASE_MS`, `LEASEHOLD_RETRY_MAX_DELAY_MS`, `LEASEHOLD_RETRY_MAX_ATTEMPTS`, and
    /// per message kind `LEASEHOLD_RETRY_OVERRIDES=kind=base_ms:max_delay_ms:max_attempts,…`.
    func retryPolicy() throws -> RetryPolicy {
        let defaults = RetryPolicy.Parameters(
            base: try Settings.Common.retryBase.resolve(nil),
            maxDelay: try Settings.Common.retryMaxDelay.resolve(nil),
            maxAttempts: try Settings.Common.retryMaxAttempts.resolve(nil))
        var overrides: [String: RetryPolicy.Parameters] = [:]
        for item in (environment["LEASEHOLD_RETRY_OVERRIDES"] ?? "").split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            let numbers = parts.count == 2 ? parts[1].split(separator: ":").compactMap { Int($0) } : []
            guard parts.count == 2, !parts[0].isEmpty, numbers.count == 3, numbers[0] > 0, numbers[1] > 0,
                (1...1000).contains(numbers[2])
            else {
                throw ValidationError(
                    "LEASEHOLD_RETRY_OVERRIDES: \(item) must be kind=base_ms:max_delay_ms:max_attempts, e.g. booking=500:60000:5"
                )
            }
            overrides[String(parts[0])] = RetryPolicy.Parameters(
                base: .milliseconds(numbers[0]), maxDelay: .milliseconds(numbers[1]), maxAttempts: numbers[2])
        }
        return RetryPolicy(defaults: defaults, overrides: overrides)
    }

    /// The role's `/metrics`, `/healthz`, `/readyz` server when `LEASEHOLD_METRICS_PORT` is set
    /// (listening on `LEASEHOLD_METRICS_HOST`), with ``ProcessMetrics`` keeping
    /// the process's figures, `leasehold_ready` and `leasehold_dependency_up` on it; `nil` when it
    /// is not set.
    func metricsEndpoint(
        registry: PrometheusCollectorRegistry, role: String, logger: Logger,
        dependencies: [ProcessMetrics.Dependency], ready: @escaping @Sendable () async -> Bool
    ) throws -> (any Service)? {
        guard let text = environment["LEASEHOLD_METRICS_PORT"], !text.isEmpty else { return nil }
        guard let port = Int(text), (1...65535).contains(port) else {
            throw ValidationError("LEASEHOLD_METRICS_PORT=\(text) must be a port number 1...65535")
        }
        let endpoint = buildMetricsEndpoint(
            host: Settings.Common.metricsHost.resolve(nil), port: port, registry: registry,
            serverName: "leasehold-\(role)", logger: logger, ready: ready)
        return MetricsEndpointService(
            endpoint: endpoint,
            processMetrics: ProcessMetrics(registry: registry, dependencies: dependencies, ready: ready))
    }

    /// Sets up logging to standard error and returns the role's logger. Lines go through
    /// ``LogOutput`` (a bounded buffer and a writer thread: a blocked standard error drops lines
    /// rather than stopping the process), in swift-log's `StreamLogHandler` format; what is still
    /// buffered at exit is written then, waiting at most 2 s. `LEASEHOLD_LOG_BUFFER_BYTES` sets
    /// how much may wait (``Settings/Common/logBufferBytes``).
    func bootstrapLogging(label: String) throws -> Logger {
        let level = Logger.Level(rawValue: Settings.Common.logLevel.resolve(logLevelFlag).lowercased()) ?? .info
        LogOutput.standardError.capacity = try Settings.Common.logBufferBytes.resolve(nil)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler(label: label, stream: LogOutput.standardError.stream)
            handler.logLevel = level
            return handler
        }
        atexit { LogOutput.standardError.flush(timeout: .seconds(2)) }
        return Logger(label: label)
    }
}

/// The metrics server and the ``ProcessMetrics`` that refresh what it serves, run as one service:
/// both end with the role's graceful shutdown.
struct MetricsEndpointService<Endpoint: Service>: Service {
    let endpoint: Endpoint
    let processMetrics: ProcessMetrics

    func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await endpoint.run() }
            group.addTask { try await processMetrics.run() }
            try await group.waitForAll()
        }
    }
}

extension CommonOptions {
    /// Runs `body` with a PostgreSQL and a Redis client for a one-shot command (`status`, `dlq`,
    /// `streams`), Redis with one connection, and closes both whether `body` returns or throws.
    /// `role` names the PostgreSQL session (`application_name` `leasehold-<role>`).
    func withClients<T>(
        role: String, postgresConnections: Int = 1,
        _ body: (_ redis: RedisClient, _ postgres: PostgresClient) async throws -> T
    ) async throws -> T {
        let redis = RedisClient(configuration: try redisConfiguration(), size: 1)
        let postgres = PostgresClient(configuration: postgresConfiguration(role: role), size: postgresConnections)
        do {
            let value = try await body(redis, postgres)
            redis.close()
            await postgres.close()
            return value
        } catch {
            redis.close()
            await postgres.close()
            throw error
        }
    }
}

extension ProcessMetrics.Dependency {
    /// PostgreSQL through the role's own client: `SELECT 1`.
    static func postgres(_ client: PostgresClient) -> Self {
        Self("postgres") { (try? await client.query("SELECT 1")) != nil }
    }

    /// Redis through the role's own client: `PING` (on the client's reactor).
    static func redis(_ client: RedisClient) -> Self {
        Self("redis") {
            (try? await withTaskExecutorPreference(client.reactor) { try await client.send("PING") }) != nil
        }
    }
}
