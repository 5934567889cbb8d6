import Hummingbird
import HummingbirdCore
import LeaseholdCore
import LeaseholdQueue
import LeaseholdReactor
import LeaseholdRedis
import Logging
import NIOCore
import NIOPosix
import Prometheus

/// Builds the ingress HTTP application; `leasehold ingress` and the tests share it.
///
/// Routes: `POST /telegram/webhook`, `POST /yookassa/webhook`, `POST /v1/bookings`, `GET /v1/bookings/<request_id>`,
/// `GET /healthz` (the process is up), `GET /readyz` (Redis answers), `GET /metrics`
/// (Prometheus text from `registry`).
///
/// Every Redis call goes through `redis`, on its reactor. Run the application from a task that
/// prefers the same reactor (`withTaskExecutorPreference(redis.reactor)`, as `leasehold ingress`
/// does) and the request handlers run there too: a request is then decoded, enqueued and answered
/// on one thread, with hand-offs only to and from the event loop that owns its socket.
public func buildIngressApplication(
    configuration: IngressConfiguration, redis: RedisClient, registry: PrometheusCollectorRegistry,
    logger: Logger
) -> some ApplicationProtocol {
    // Per-request loggers derive from this one: see DeferredMetadataLogHandler for why it wraps.
    var requestLogger = logger
    requestLogger.handler = DeferredMetadataLogHandler(wrapping: logger.handler)
    let router = Router(context: IngressRequestContext.self)
    router.add(middleware: MetricsMiddleware())
    // A WAIT vouches for its own connection's writes only: replica acknowledgement needs the one
    // connection every enqueue and WAIT share.
    precondition(
        configuration.redisMinReplicas == 0 || redis.size == 1,
        "LEASEHOLD_REDIS_MIN_REPLICAS needs a Redis client with one connection")
    let enqueuer = Enqueuer(
        redis: redis, producer: StreamProducer(keys: configuration.keys, highWaterMark: configuration.highWaterMark),
        retryAfterSeconds: configuration.retryAfterSeconds,
        replicas: configuration.redisMinReplicas > 0
            ? ReplicaAcknowledgement(
                redis: redis, minReplicas: configuration.redisMinReplicas,
                timeout: configuration.redisReplicaTimeout)
            : nil)

    router.get("healthz") { _, _ in "ok\n" }
    router.get("readyz") { _, context -> String in
        do {
            _ = try await withTaskExecutorPreference(redis.reactor) { try await redis.send("PING") }
            return "ready\n"
        } catch {
            context.logger.warning("not ready: Redis does not answer", metadata: ["error": "\(error)"])
            throw HTTPError(.serviceUnavailable, message: "Redis does not answer")
        }
    }
    router.get("metrics") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }
    TelegramWebhookController(configuration: configuration, enqueuer: enqueuer).register(with: router)
    BookingsController(configuration: configuration, enqueuer: enqueuer, redis: redis).register(with: router)
    YooKassaWebhookController(configuration: configuration, enqueuer: enqueuer).register(with: router)

    // /healthz, and /readyz while Redis answered a moment ago, straight from the event loop.
    let readiness = ReadinessCheck {
        _ = try await withTaskExecutorPreference(redis.reactor) { try await redis.send("PING") }
    }
    let bodyTimeout = TimeAmount.seconds(Int64(configuration.bodyTimeoutSeconds))
    return Application(
        router: router,
        server: .http1(
            configuration: HTTP1Channel.Configuration(
                additionalChannelHandlers: [
                    HealthEndpointHandler(readiness: readiness), UnreadRequestHandler(bodyTimeout: bodyTimeout),
                ],
                idleTimeout: TimeAmount.seconds(Int64(configuration.idleTimeoutSeconds)))),
        configuration: ApplicationConfiguration(
            address: .hostname(configuration.host, port: configuration.port), serverName: "leasehold-ingress"),
        services: [readiness],
        eventLoopGroupProvider: configuration.eventLoopThreads.map {
            // Lives as long as the process (an ingress replica builds one application).
            .shared(MultiThreadedEventLoopGroup(numberOfThreads: $0))
        } ?? .singleton,
        logger: requestLogger)
}
