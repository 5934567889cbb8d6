import LeaseholdQueue

/// Flood control for one kind of sender: a token bucket per sender, shared by every ingress
/// replica (``StreamProducer/FloodLimit``): `burst` requests at once, then `rate` a second.
public struct FloodControl: Sendable, Equatable {
    /// Requests a second per sender, refilled continuously; 0 turns flood control off.
    public var rate: Int
    /// Requests a sender may send at once (the bucket's size).
    public var burst: Int

    public init(rate: Int, burst: Int) {
        self.rate = rate
        self.burst = burst
    }

    /// No limit.
    public static let off = FloodControl(rate: 0, burst: IngressConfiguration.defaultFloodBurst)

    /// The limit for the bucket `key`; `nil` when off.
    func limit(key: String) -> StreamProducer.FloodLimit? {
        rate > 0 ? StreamProducer.FloodLimit(key: key, rate: rate, burst: max(1, burst)) : nil
    }
}

/// How an ingress replica runs. Every field has a default; `leasehold ingress` fills them from
/// flags and the environment.
public struct IngressConfiguration: Sendable {
    /// Listen address (`LEASEHOLD_INGRESS_HOST`, `LEASEHOLD_INGRESS_PORT`).
    public var host: String
    public var port: Int
    /// Redis key layout (`LEASEHOLD_REDIS_PREFIX`).
    public var keys: RedisKeys
    /// Telegram's `X-Telegram-Bot-Api-Secret-Token` (`TELEGRAM_WEBHOOK_SECRET`). Empty refuses
    /// every Telegram webhook (401): there is no "no secret" mode.
    public var telegramSecret: String
    /// Bearer token for `/v1/bookings` (`LEASEHOLD_API_TOKEN`). Empty refuses every call (401).
    public var apiToken: String
    /// Largest request body accepted (`LEASEHOLD_MAX_BODY_BYTES`); larger bodies get 413.
    public var maxBodyBytes: Int
    /// Refuse new entries with 503 once a stream's backlog (undelivered + unacknowledged entries)
    /// reaches this (`LEASEHOLD_STREAM_HIGH_WATER_MARK`); 0 disables the check.
    public var highWaterMark: Int
    /// `Retry-After` seconds on 503.
    public var retryAfterSeconds: Int
    /// How long a `pending` marker for an API request lives before it is answered.
    public var resultTTLSeconds: Int
    /// Redis connections per replica. Concurrent requests pipeline their scripts on a shared
    /// connection, so one is usually fastest (the most scripts per write and per read).
    public var redisConnections: Int
    /// Who may post to `/yookassa/webhook` (`LEASEHOLD_YOOKASSA_ALLOWED_CIDRS`,
    /// `LEASEHOLD_TRUSTED_PROXIES`); by default YooKassa's published ranges and no proxies.
    public var yookassaSources: SourceAddressPolicy
    /// A connection on which nothing arrives for this long — no request, or a request head that
    /// never completes — is closed (`LEASEHOLD_INGRESS_IDLE_TIMEOUT_SECONDS`). Above nginx's
    /// upstream keep-alive of 60 s, so ingress never closes a connection nginx is about to reuse.
    public var idleTimeoutSeconds: Int
    /// A request body must be complete this long after its head, or the connection is answered
    /// 408 and closed (`LEASEHOLD_INGRESS_BODY_TIMEOUT_SECONDS`): the slow-loris bound.
    public var bodyTimeoutSeconds: Int
    /// Event loop threads for the HTTP connections (`LEASEHOLD_INGRESS_EVENT_LOOP_THREADS`); `nil`
    /// shares SwiftNIO's process-wide group (one thread per core). Their only work is moving
    /// bytes and parsing HTTP: the handlers run on the caller's reactor (see
    /// ``buildIngressApplication(configuration:redis:registry:logger:)``), so when several
    /// replicas share a machine, one each is usually cheapest.
    public var eventLoopThreads: Int?
    /// Answer 2xx only once this many Redis replicas have the entry (`WAIT`;
    /// `LEASEHOLD_REDIS_MIN_REPLICAS`); 0 answers once the master has it.
    public var redisMinReplicas: Int
    /// How long to wait for those replicas before answering 503 with `Leasehold-Outcome: unknown`
    /// (`LEASEHOLD_REDIS_REPLICA_TIMEOUT_MS`).
    public var redisReplicaTimeout: Duration
    /// Flood control per Telegram chat (`LEASEHOLD_TELEGRAM_FLOOD_RATE`,
    /// `LEASEHOLD_TELEGRAM_FLOOD_BURST`): an update over it is answered 200 with a "slow down"
    /// reply to the callback and not enqueued. Off by default.
    public var telegramFlood: FloodControl
    /// Flood control per API client address (`LEASEHOLD_API_FLOOD_RATE`,
    /// `LEASEHOLD_API_FLOOD_BURST`): the TCP peer, or the `X-Forwarded-For` client behind a
    /// trusted proxy (``SourceAddressPolicy/client(peer:forwardedFor:)``). A request over it gets
    /// 429 with `Retry-After`. Off by default.
    public var apiFlood: FloodControl

    // The defaults of the settings `leasehold ingress` reads (its `--help` shows these).

    /// ``host``'s default: every interface.
    public static let defaultHost = "0.0.0.0"
    /// ``port``'s default.
    public static let defaultPort = 8080
    /// ``maxBodyBytes``'s default: 64 KiB.
    public static let defaultMaxBodyBytes = 64 * 1024
    /// ``highWaterMark``'s default.
    public static let defaultHighWaterMark = 100_000
    /// ``idleTimeoutSeconds``'s default.
    public static let defaultIdleTimeoutSeconds = 75
    /// ``bodyTimeoutSeconds``'s default.
    public static let defaultBodyTimeoutSeconds = 10
    /// ``redisMinReplicas``'s default: answer once the master has the entry.
    public static let defaultRedisMinReplicas = 0
    /// ``redisReplicaTimeout``'s default.
    public static let defaultRedisReplicaTimeout: Duration = .milliseconds(1_000)
    /// The flood rates' default: off. A limit right for one deployment throttles another's honest
    /// traffic (every client behind a proxy not listed as trusted shares its address; a load test
    /// sends thousands a second from one), so it is turned on knowingly.
    public static let defaultFloodRate = 0
    /// The flood bursts' default: a person tapping quickly through a menu stays under it.
    public static let defaultFloodBurst = 20

    public init(
        host: String = IngressConfiguration.defaultHost, port: Int = IngressConfiguration.defaultPort,
        keys: RedisKeys = RedisKeys(), telegramSecret: String = "", apiToken: String = "",
        maxBodyBytes: Int = IngressConfiguration.defaultMaxBodyBytes,
        highWaterMark: Int = IngressConfiguration.defaultHighWaterMark, retryAfterSeconds: Int = 2,
        resultTTLSeconds: Int = 86_400, redisConnections: Int = 1,
        yookassaSources: SourceAddressPolicy = SourceAddressPolicy(),
        idleTimeoutSeconds: Int = IngressConfiguration.defaultIdleTimeoutSeconds,
        bodyTimeoutSeconds: Int = IngressConfiguration.defaultBodyTimeoutSeconds, eventLoopThreads: Int? = nil,
        redisMinReplicas: Int = IngressConfiguration.defaultRedisMinReplicas,
        redisReplicaTimeout: Duration = IngressConfiguration.defaultRedisReplicaTimeout,
        telegramFlood: FloodControl = .off, apiFlood: FloodControl = .off
    ) {
        self.telegramFlood = telegramFlood
        self.apiFlood = apiFlood
        self.redisMinReplicas = redisMinReplicas
        self.redisReplicaTimeout = redisReplicaTimeout
        self.eventLoopThreads = eventLoopThreads
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.bodyTimeoutSeconds = bodyTimeoutSeconds
        self.yookassaSources = yookassaSources
        self.host = host
        self.port = port
        self.keys = keys
        self.telegramSecret = telegramSecret
        self.apiToken = apiToken
        self.maxBodyBytes = maxBodyBytes
        self.highWaterMark = highWaterMark
        self.retryAfterSeconds = retryAfterSeconds
        self.resultTTLSeconds = resultTTLSeconds
        self.redisConnections = redisConnections
    }
}
