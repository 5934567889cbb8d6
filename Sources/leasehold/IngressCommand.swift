import ArgumentParser
import Foundation
import Hummingbird
import LeaseholdIngress
import LeaseholdReactor
import LeaseholdRedis
import LeaseholdRuntime
import Metrics
import Prometheus
import ServiceLifecycle

extension Int {
    /// `nil` for 0 (a setting's "use the default").
    fileprivate var nonZero: Int? { self == 0 ? nil : self }
}

/// `leasehold ingress`: the HTTP edge.
struct IngressCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingress",
        abstract: "Serve the webhooks and the bookings API; enqueue to Redis streams (stateless, no Postgres).",
        discussion: """
            Answers 2xx only after the entry is in Redis; 503 with Retry-After when Redis is unreachable or a \
            stream's backlog is over the high-water mark. Secrets come from the environment only: \
            the bot's secret_token, compared with X-Telegram-Bot-Api-Secret-Token (env: TELEGRAM_WEBHOOK_SECRET), \
            and the bearer token for /v1/bookings (env: LEASEHOLD_API_TOKEN); when unset, those routes refuse \
            every request with 401. /yookassa/webhook has no secret (YooKassa signs nothing): it answers 403 \
            unless the source address is in LEASEHOLD_YOOKASSA_ALLOWED_CIDRS (default: YooKassa's published \
            ranges); X-Forwarded-For is believed only from LEASEHOLD_TRUSTED_PROXIES (default: none — put your \
            reverse proxy here). SIGTERM or SIGINT: stop accepting connections, finish requests in flight, exit 0.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Listen address (env: LEASEHOLD_INGRESS_HOST; default 0.0.0.0).")
    var host: String?

    @Option(help: "Listen port (env: LEASEHOLD_INGRESS_PORT; default 8080).")
    var port: Int?

    @Option(
        help:
            "Answer 503 once a stream's backlog reaches this many entries; 0 disables (env: LEASEHOLD_STREAM_HIGH_WATER_MARK; default 100000)."
    )
    var highWaterMark: Int?

    @Option(help: "Largest accepted request body in bytes (env: LEASEHOLD_MAX_BODY_BYTES; default 65536).")
    var maxBodyBytes: Int?

    @Option(
        help: ArgumentHelp(
            "Comma-separated CIDRs allowed to post /yookassa/webhook (env: LEASEHOLD_YOOKASSA_ALLOWED_CIDRS; default YooKassa's ranges: \(SourceAddressPolicy.yookassaRanges.joined(separator: ",")))."
        ))
    var yookassaAllowedCidrs: String?

    @Option(
        help:
            "Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed (env: LEASEHOLD_TRUSTED_PROXIES; default none)."
    )
    var trustedProxies: String?

    @Option(
        help:
            "Close a connection on which nothing arrives for this many seconds (env: LEASEHOLD_INGRESS_IDLE_TIMEOUT_SECONDS; default 75)."
    )
    var idleTimeoutSeconds: Int?

    @Option(
        help:
            "A request body must arrive within this many seconds of its head, else 408 and the connection closed (env: LEASEHOLD_INGRESS_BODY_TIMEOUT_SECONDS; default 10)."
    )
    var bodyTimeoutSeconds: Int?

    @Option(
        help:
            "Event loop threads that read and write the HTTP connections (env: LEASEHOLD_INGRESS_EVENT_LOOP_THREADS; default: one per CPU core). The request handlers and Redis run on one thread of their own."
    )
    var eventLoopThreads: Int?

    @Option(
        help:
            "Answer 2xx only once this many Redis replicas acknowledged the entry (WAIT), so a master dying right after the answer cannot lose it; 0: once the master has it (env: LEASEHOLD_REDIS_MIN_REPLICAS; default 0)."
    )
    var redisMinReplicas: Int?

    @Option(
        help:
            "How long to wait for those replicas before answering 503 with Leasehold-Outcome: unknown (env: LEASEHOLD_REDIS_REPLICA_TIMEOUT_MS; default 1000)."
    )
    var redisReplicaTimeoutMs: Int?

    /// The YooKassa source policy; a malformed CIDR is a startup error naming the variable.
    func sourcePolicy() throws -> SourceAddressPolicy {
        func parse(_ flag: String?, _ variable: String) throws -> [CIDRBlock]? {
            guard let text = flag ?? Setting.environment[variable], !text.isEmpty else { return nil }
            do {
                return try CIDRBlock.list(text)
            } catch {
                throw ValidationError("\(variable): \(error)")
            }
        }
        return SourceAddressPolicy(
            allowed: try parse(yookassaAllowedCidrs, "LEASEHOLD_YOOKASSA_ALLOWED_CIDRS"),
            trustedProxies: try parse(trustedProxies, "LEASEHOLD_TRUSTED_PROXIES") ?? [])
    }

    func validate() throws {
        _ = try sourcePolicy()
    }

    func run() async throws {
        let logger = try common.bootstrapLogging(label: "leasehold.ingress")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        LogOutput.standardError.countDropsInMetrics()

        let environment = ProcessInfo.processInfo.environment
        let configuration = IngressConfiguration(
            host: Setting.string(host, "LEASEHOLD_INGRESS_HOST", default: "0.0.0.0"),
            port: try Setting.int(port, "LEASEHOLD_INGRESS_PORT", default: 8080, range: 0...65535),
            keys: common.redisKeys,
            telegramSecret: environment["TELEGRAM_WEBHOOK_SECRET"] ?? "",
            apiToken: environment["LEASEHOLD_API_TOKEN"] ?? "",
            maxBodyBytes: try Setting.int(
                maxBodyBytes, "LEASEHOLD_MAX_BODY_BYTES", default: 64 * 1024, range: 1...(16 << 20)),
            highWaterMark: try Setting.int(
                highWaterMark, "LEASEHOLD_STREAM_HIGH_WATER_MARK", default: 100_000, range: 0...Int(Int32.max)),
            yookassaSources: try sourcePolicy(),
            idleTimeoutSeconds: try Setting.int(
                idleTimeoutSeconds, "LEASEHOLD_INGRESS_IDLE_TIMEOUT_SECONDS", default: 75, range: 1...86_400),
            bodyTimeoutSeconds: try Setting.int(
                bodyTimeoutSeconds, "LEASEHOLD_INGRESS_BODY_TIMEOUT_SECONDS", default: 10, range: 1...3_600),
            eventLoopThreads: try Setting.int(
                eventLoopThreads, "LEASEHOLD_INGRESS_EVENT_LOOP_THREADS", default: 0, range: 0...256
            ).nonZero,
            redisMinReplicas: try Setting.int(
                redisMinReplicas, "LEASEHOLD_REDIS_MIN_REPLICAS", default: 0, range: 0...16),
            redisReplicaTimeout: try Setting.milliseconds(
                redisReplicaTimeoutMs, "LEASEHOLD_REDIS_REPLICA_TIMEOUT_MS", default: 1_000, range: 1...60_000))
        if configuration.telegramSecret.isEmpty {
            logger.warning("TELEGRAM_WEBHOOK_SECRET is not set: /telegram/webhook answers 401 to everything")
        }
        if configuration.apiToken.isEmpty {
            logger.warning("LEASEHOLD_API_TOKEN is not set: /v1/bookings answers 401 to everything")
        }

        // One reactor thread runs the request handlers and the non-blocking Redis connection they
        // share (see buildIngressApplication); the event loops only move bytes.
        let reactor = Reactor(label: "leasehold.ingress")
        defer { reactor.shutDown() }
        let redis = RedisClient(
            configuration: try common.redisConfiguration(), reactor: reactor, size: configuration.redisConnections)
        let app = buildIngressApplication(
            configuration: configuration, redis: redis, registry: registry, logger: logger)
        // CPU, memory and descriptors on /metrics, and leasehold_ready: whether Redis answers.
        let processMetrics = ProcessMetrics(registry: registry) {
            (try? await withTaskExecutorPreference(reactor) { try await redis.send("PING") }) != nil
        }
        try await withTaskExecutorPreference(reactor) {
            try await runServices([app, processMetrics], logger: logger) {
                redis.close()
            }
        }
    }
}
