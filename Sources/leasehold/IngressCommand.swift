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
            reverse proxy here). Flood control (off by default): a token bucket per Telegram chat \
            (LEASEHOLD_TELEGRAM_FLOOD_RATE/_BURST; over it, 200 with a "slow down" answer to the callback) and per \
            API client address (LEASEHOLD_API_FLOOD_RATE/_BURST; over it, 429 with Retry-After), kept in Redis so \
            every replica shares it; nothing is enqueued over the limit. SIGTERM or SIGINT: stop accepting connections, finish requests in flight, exit 0.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(help: Settings.Ingress.host.help)
    var host: String?

    @Option(help: Settings.Ingress.port.help)
    var port: Int?

    @Option(help: Settings.Ingress.highWaterMark.help)
    var highWaterMark: Int?

    @Option(help: Settings.Ingress.maxBodyBytes.help)
    var maxBodyBytes: Int?

    @Option(help: Settings.Ingress.yookassaAllowedCIDRs.help)
    var yookassaAllowedCidrs: String?

    @Option(help: Settings.Ingress.trustedProxies.help)
    var trustedProxies: String?

    @Option(help: Settings.Ingress.idleTimeoutSeconds.help)
    var idleTimeoutSeconds: Int?

    @Option(help: Settings.Ingress.bodyTimeoutSeconds.help)
    var bodyTimeoutSeconds: Int?

    @Option(help: Settings.Ingress.eventLoopThreads.help)
    var eventLoopThreads: Int?

    @Option(help: Settings.Ingress.redisMinReplicas.help)
    var redisMinReplicas: Int?

    @Option(help: Settings.Ingress.redisReplicaTimeout.help)
    var redisReplicaTimeoutMs: Int?

    @Option(help: Settings.Ingress.telegramFloodRate.help)
    var telegramFloodRate: Int?

    @Option(help: Settings.Ingress.telegramFloodBurst.help)
    var telegramFloodBurst: Int?

    @Option(help: Settings.Ingress.apiFloodRate.help)
    var apiFloodRate: Int?

    @Option(help: Settings.Ingress.apiFloodBurst.help)
    var apiFloodBurst: Int?

    /// The YooKassa source policy; a malformed CIDR is a startup error naming the variable.
    func sourcePolicy() throws -> SourceAddressPolicy {
        func parse(_ flag: String?, _ setting: StringSetting) throws -> [CIDRBlock]? {
            let text = setting.resolve(flag)
            guard !text.isEmpty else { return nil }
            do {
                return try CIDRBlock.list(text)
            } catch {
                throw ValidationError("\(setting.variable): \(error)")
            }
        }
        return SourceAddressPolicy(
            allowed: try parse(yookassaAllowedCidrs, Settings.Ingress.yookassaAllowedCIDRs),
            trustedProxies: try parse(trustedProxies, Settings.Ingress.trustedProxies) ?? [])
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
            host: Settings.Ingress.host.resolve(host),
            port: try Settings.Ingress.port.resolve(port),
            keys: common.redisKeys,
            telegramSecret: environment["TELEGRAM_WEBHOOK_SECRET"] ?? "",
            apiToken: environment["LEASEHOLD_API_TOKEN"] ?? "",
            maxBodyBytes: try Settings.Ingress.maxBodyBytes.resolve(maxBodyBytes),
            highWaterMark: try Settings.Ingress.highWaterMark.resolve(highWaterMark),
            yookassaSources: try sourcePolicy(),
            idleTimeoutSeconds: try Settings.Ingress.idleTimeoutSeconds.resolve(idleTimeoutSeconds),
            bodyTimeoutSeconds: try Settings.Ingress.bodyTimeoutSeconds.resolve(bodyTimeoutSeconds),
            eventLoopThreads: try Settings.Ingress.eventLoopThreads.resolve(eventLoopThreads).nonZero,
            redisMinReplicas: try Settings.Ingress.redisMinReplicas.resolve(redisMinReplicas),
            redisReplicaTimeout: try Settings.Ingress.redisReplicaTimeout.resolve(redisReplicaTimeoutMs),
            telegramFlood: FloodControl(
                rate: try Settings.Ingress.telegramFloodRate.resolve(telegramFloodRate),
                burst: try Settings.Ingress.telegramFloodBurst.resolve(telegramFloodBurst)),
            apiFlood: FloodControl(
                rate: try Settings.Ingress.apiFloodRate.resolve(apiFloodRate),
                burst: try Settings.Ingress.apiFloodBurst.resolve(apiFloodBurst)))
        if configuration.telegramSecret.isEmpty {
            logger.warning("TELEGRAM_WEBHOOK_SECRET is not set: /telegram/webhook answers 401 to everything")
        }
        if configuration.apiToken.isEmpty {
            logger.warning("LEASEHOLD_API_TOKEN is not set: /v1/bookings answers 401 to everything")
        }

        // One reactor thread runs the request handlers and the non-blocking Redis connection they
        // share (see buildIngressApplication); the event loops only move bytes.
        let reactor = Reactor(label: "leasehold.ingress")
        let redis = RedisClient(
            configuration: try common.redisConfiguration(), reactor: reactor, size: configuration.redisConnections)
        let app = buildIngressApplication(
            configuration: configuration, redis: redis, registry: registry, logger: logger)
        // CPU, memory and descriptors on /metrics, and leasehold_ready: whether Redis answers.
        let processMetrics = ProcessMetrics(registry: registry, dependencies: [.redis(redis)]) {
            (try? await withTaskExecutorPreference(reactor) { try await redis.send("PING") }) != nil
        }
        try await runServiceGroup(
            [reactor, redis, OnReactor(reactor: reactor, service: app), processMetrics], logger: logger)
    }
}
