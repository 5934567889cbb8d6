import Foundation
import LeaseholdConsole
import LeaseholdCore
import LeaseholdDomain
import LeaseholdIngress
import LeaseholdNotifier
import LeaseholdQueue
import LeaseholdSupervisor
import LeaseholdWorker

/// Every setting the roles read from a flag or the environment, defined once, per role: its
/// variable, its default, its range and what it does. The flags' `--help` texts are made from these
/// (``EnvironmentSetting/help``) and the commands resolve them from the same values, so the help
/// shows exactly the default the code uses. Where a role's configuration has a default of its own
/// (``WorkerConfiguration/defaultConcurrency``), the setting reads it: that constant is the one default.
enum Settings {
    /// The process's environment, where every setting without a flag is looked up.
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// Every setting defined here, for the checks that must cover them all.
    static var all: [any EnvironmentSetting] {
        Common.all + Ingress.all + Worker.all + Supervisor.all + Notifier.all + Console.all + Redaction.all
    }

    /// The settings every role shares (``CommonOptions``).
    enum Common {
        static let logLevel = StringSetting(
            variable: "LOG_LEVEL", default: "info", summary: "trace, debug, info, notice, warning, error, critical",
            emptyIsUnset: false)
        static let redisPrefix = StringSetting(
            variable: "LEASEHOLD_REDIS_PREFIX", default: RedisKeys().prefix, summary: "Prefix of every Redis key")
        static let redisShards = OptionalIntSetting(
            variable: "LEASEHOLD_REDIS_SHARDS", range: 1...1024,
            summary: """
                Streams per source, every key of a message under its stream's hash tag (lh:{bookings:3}:stream); \
                needed on a Redis Cluster, and every role must agree
                """,
            unset: "the one-node layout, lh:stream:bookings")
        static let logBufferBytes = IntSetting(
            variable: "LEASEHOLD_LOG_BUFFER_BYTES", default: 1 << 20, range: 4_096...(256 << 20),
            summary: "Bytes of log lines waiting for standard error; past them, lines are dropped")
        static let metricsHost = StringSetting(
            variable: "LEASEHOLD_METRICS_HOST", default: "0.0.0.0",
            summary: "Address the /metrics, /healthz and /readyz server listens on")
        static let retryBase = DurationSetting(
            variable: "LEASEHOLD_RETRY_BASE_MS", unit: .milliseconds, default: RetryPolicy.Parameters().base,
            range: 1...86_400_000, summary: "First retry delay in ms, doubled per attempt with jitter")
        static let retryMaxDelay = DurationSetting(
            variable: "LEASEHOLD_RETRY_MAX_DELAY_MS", unit: .milliseconds, default: RetryPolicy.Parameters().maxDelay,
            range: 1...86_400_000, summary: "Longest retry delay in ms")
        static let retryMaxAttempts = IntSetting(
            variable: "LEASEHOLD_RETRY_MAX_ATTEMPTS", default: RetryPolicy.Parameters().maxAttempts, range: 1...1000,
            summary: "Attempts before a message is dead-lettered")

        static let all: [any EnvironmentSetting] = [
            logLevel, redisPrefix, redisShards, logBufferBytes, metricsHost, retryBase, retryMaxDelay,
            retryMaxAttempts,
        ]
    }

    /// `leasehold ingress`.
    enum Ingress {
        static let host = StringSetting(
            variable: "LEASEHOLD_INGRESS_HOST", default: IngressConfiguration.defaultHost, summary: "Listen address")
        static let port = IntSetting(
            variable: "LEASEHOLD_INGRESS_PORT", default: IngressConfiguration.defaultPort, range: 0...65535,
            summary: "Listen port")
        static let highWaterMark = IntSetting(
            variable: "LEASEHOLD_STREAM_HIGH_WATER_MARK", default: IngressConfiguration.defaultHighWaterMark,
            range: 0...Int(Int32.max),
            summary: "Answer 503 once a stream's backlog reaches this many entries; 0 disables")
        static let maxBodyBytes = IntSetting(
            variable: "LEASEHOLD_MAX_BODY_BYTES", default: IngressConfiguration.defaultMaxBodyBytes,
            range: 1...(16 << 20), summary: "Largest accepted request body in bytes")
        /// Empty: ``SourceAddressPolicy``'s default, YooKassa's published ranges.
        static let yookassaAllowedCIDRs = StringSetting(
            variable: "LEASEHOLD_YOOKASSA_ALLOWED_CIDRS", default: "",
            summary: "Comma-separated CIDRs allowed to post /yookassa/webhook",
            shownDefault: "default YooKassa's ranges: \(SourceAddressPolicy.yookassaRanges.joined(separator: ","))")
        static let trustedProxies = StringSetting(
            variable: "LEASEHOLD_TRUSTED_PROXIES", default: "",
            summary: "Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed",
            shownDefault: "default none")
        static let idleTimeoutSeconds = IntSetting(
            variable: "LEASEHOLD_INGRESS_IDLE_TIMEOUT_SECONDS", default: IngressConfiguration.defaultIdleTimeoutSeconds,
            range: 1...86_400, summary: "Close a connection on which nothing arrives for this many seconds")
        static let bodyTimeoutSeconds = IntSetting(
            variable: "LEASEHOLD_INGRESS_BODY_TIMEOUT_SECONDS", default: IngressConfiguration.defaultBodyTimeoutSeconds,
            range: 1...3_600,
            summary:
                "A request body must arrive within this many seconds of its head, else 408 and the connection closed")
        /// 0: ``IngressConfiguration/eventLoopThreads`` `nil`, SwiftNIO's group of one thread per core.
        static let eventLoopThreads = IntSetting(
            variable: "LEASEHOLD_INGRESS_EVENT_LOOP_THREADS", default: 0, range: 0...256,
            summary: "Event loop threads that read and write the HTTP connections",
            shownDefault: "default: one per CPU core",
            detail: "The request handlers and Redis run on one thread of their own.")
        static let redisMinReplicas = IntSetting(
            variable: "LEASEHOLD_REDIS_MIN_REPLICAS", default: IngressConfiguration.defaultRedisMinReplicas,
            range: 0...16,
            summary: """
                Answer 2xx only once this many Redis replicas acknowledged the entry (WAIT), so a master dying \
                right after the answer cannot lose it; 0: once the master has it
                """)
        static let redisReplicaTimeout = DurationSetting(
            variable: "LEASEHOLD_REDIS_REPLICA_TIMEOUT_MS", unit: .milliseconds,
            default: IngressConfiguration.defaultRedisReplicaTimeout, range: 1...60_000,
            summary: "How long to wait for those replicas before answering 503 with Leasehold-Outcome: unknown")
        static let telegramFloodRate = IntSetting(
            variable: "LEASEHOLD_TELEGRAM_FLOOD_RATE", default: IngressConfiguration.defaultFloodRate,
            range: 0...1_000_000,
            summary: """
                Telegram updates a second per chat, shared by every replica; over it, the callback is answered \
                "slow down" and nothing is enqueued; 0 disables
                """)
        static let telegramFloodBurst = IntSetting(
            variable: "LEASEHOLD_TELEGRAM_FLOOD_BURST", default: IngressConfiguration.defaultFloodBurst,
            range: 1...1_000_000, summary: "Telegram updates a chat may send at once before its rate applies")
        static let apiFloodRate = IntSetting(
            variable: "LEASEHOLD_API_FLOOD_RATE", default: IngressConfiguration.defaultFloodRate,
            range: 0...1_000_000,
            summary: """
                /v1/bookings requests a second per client address (X-Forwarded-For behind a trusted proxy), \
                shared by every replica; over it, 429 with Retry-After; 0 disables
                """)
        static let apiFloodBurst = IntSetting(
            variable: "LEASEHOLD_API_FLOOD_BURST", default: IngressConfiguration.defaultFloodBurst,
            range: 1...1_000_000, summary: "/v1/bookings requests a client may send at once before its rate applies")

        static let all: [any EnvironmentSetting] = [
            host, port, highWaterMark, maxBodyBytes, yookassaAllowedCIDRs, trustedProxies, idleTimeoutSeconds,
            bodyTimeoutSeconds, eventLoopThreads, redisMinReplicas, redisReplicaTimeout, telegramFloodRate,
            telegramFloodBurst, apiFloodRate, apiFloodBurst,
        ]
    }

    /// `leasehold worker` (and the retry policy in ``Common``).
    enum Worker {
        static let concurrency = IntSetting(
            variable: "LEASEHOLD_WORKER_CONCURRENCY", default: WorkerConfiguration.defaultConcurrency,
            range: 1...1024, summary: "Entries processed at once")
        static let leaseTTL = DurationSetting(
            variable: "LEASEHOLD_LEASE_TTL_MS", unit: .milliseconds, default: WorkerConfiguration.defaultLeaseTTL,
            range: 300...3_600_000, summary: "Lease TTL in ms, renewed every third of it")
        static let drainTimeout = DurationSetting(
            variable: "LEASEHOLD_DRAIN_TIMEOUT_MS", unit: .milliseconds,
            default: WorkerConfiguration.defaultDrainTimeout, range: 0...3_600_000,
            summary: "SIGTERM drain timeout in ms")
        static let lockTimeout = DurationSetting(
            variable: "LEASEHOLD_LOCK_TIMEOUT_MS", unit: .milliseconds, default: WorkerConfiguration.defaultLockTimeout,
            range: 1...3_600_000, summary: "Per-transaction lock_timeout in ms")
        static let statementTimeout = DurationSetting(
            variable: "LEASEHOLD_STATEMENT_TIMEOUT_MS", unit: .milliseconds,
            default: WorkerConfiguration.defaultStatementTimeout, range: 1...3_600_000,
            summary: "Per-transaction statement_timeout in ms")
        static let outageWindow = DurationSetting(
            variable: "LEASEHOLD_OUTAGE_WINDOW_MS", unit: .milliseconds,
            default: WorkerConfiguration.defaultOutageWindow, range: 0...86_400_000,
            summary: """
                How long, in ms, an entry waits out a PostgreSQL or Redis outage (connection errors) before it \
                counts as a failed attempt
                """)
        static let consumerName = StringSetting(
            variable: "LEASEHOLD_CONSUMER_NAME", summary: "Consumer name in the group; unique per process",
            shownDefault: "default host-pid-random", default: { WorkerConfiguration.defaultConsumerName() })
        static let oneBookingPerUser = BoolSetting(
            variable: "LEASEHOLD_ONE_BOOKING_PER_USER", default: BookingRules().onePerUser,
            summary: "At most one active interview per user: true or false")

        static let all: [any EnvironmentSetting] = [
            concurrency, leaseTTL, drainTimeout, lockTimeout, statementTimeout, outageWindow, consumerName,
            oneBookingPerUser,
        ]
    }

    /// `leasehold supervisor` (and the retry policy in ``Common``).
    enum Supervisor {
        static let visibilityTimeout = DurationSetting(
            variable: "LEASEHOLD_VISIBILITY_TIMEOUT_MS", unit: .milliseconds,
            default: SupervisorConfiguration.defaultVisibilityTimeout, range: 100...86_400_000,
            summary: "Reclaim entries unacknowledged this long, in ms")
        static let leaderTTL = DurationSetting(
            variable: "LEASEHOLD_LEADER_TTL_MS", unit: .milliseconds, default: LeaderElector.Configuration().ttl,
            range: 300...600_000, summary: "Leader lease TTL in ms")
        static let interval = DurationSetting(
            variable: "LEASEHOLD_SUPERVISOR_INTERVAL_MS", unit: .milliseconds,
            default: SupervisorConfiguration.defaultInterval, range: 10...600_000,
            summary: "Pause between maintenance passes in ms")
        static let inboxRetention = DurationSetting(
            variable: "LEASEHOLD_INBOX_RETENTION_HOURS", unit: .hours,
            default: SupervisorConfiguration.defaultInboxRetention, range: 1...87_600,
            summary: "Delete inbox rows older than this many hours")
        static let consumerIdleTimeout = DurationSetting(
            variable: "LEASEHOLD_CONSUMER_IDLE_MS", unit: .milliseconds,
            default: SupervisorConfiguration.defaultConsumerIdleTimeout, range: 1_000...2_592_000_000,
            summary: "Remove consumers idle this long, in ms, that own no pending entry")
        static let sampleInterval = DurationSetting(
            variable: "LEASEHOLD_SAMPLE_INTERVAL_MS", unit: .milliseconds,
            default: SupervisorConfiguration.defaultSampleInterval, range: 100...3_600_000,
            summary: """
                Record a backlog and throughput sample (the ops console's chart; the last 120 are kept in \
                lh:samples) this often, in ms
                """)

        static let all: [any EnvironmentSetting] = [
            visibilityTimeout, leaderTTL, interval, inboxRetention, consumerIdleTimeout, sampleInterval,
        ]
    }

    /// `leasehold notifier`.
    enum Notifier {
        static let apiBaseURL = StringSetting(
            variable: "TELEGRAM_API_BASE_URL", default: NotifierConfiguration.defaultAPIBaseURL,
            summary: "Bot API base URL")
        static let name = StringSetting(
            variable: "LEASEHOLD_NOTIFIER_NAME", summary: "Name recorded in outbox.claimed_by",
            shownDefault: "default notifier-host-pid-random", default: { NotifierConfiguration.defaultName() })
        static let rate = IntSetting(
            variable: "LEASEHOLD_NOTIFIER_RATE", default: NotifierConfiguration.defaultGlobalRate, range: 1...10_000,
            summary: "Messages per second for the whole bot, all notifiers together")
        static let chatInterval = DurationSetting(
            variable: "LEASEHOLD_NOTIFIER_CHAT_INTERVAL_MS", unit: .milliseconds,
            default: NotifierConfiguration.defaultChatInterval, range: 0...3_600_000,
            summary: "At most one message per private chat per this many ms")
        static let groupChatInterval = DurationSetting(
            variable: "LEASEHOLD_NOTIFIER_GROUP_CHAT_INTERVAL_MS", unit: .milliseconds,
            default: NotifierConfiguration.defaultGroupChatInterval, range: 0...3_600_000,
            summary: "The same for groups and channels")
        static let concurrency = IntSetting(
            variable: "LEASEHOLD_NOTIFIER_CONCURRENCY", default: NotifierConfiguration.defaultConcurrency,
            range: 1...1_000, summary: "Bot API calls in flight at once in this process")
        static let pollInterval = DurationSetting(
            variable: "LEASEHOLD_NOTIFIER_POLL_INTERVAL_MS", unit: .milliseconds,
            default: NotifierConfiguration.defaultPollInterval, range: 10...60_000,
            summary: "How often an idle notifier looks for new rows, in ms")
        static let requestTimeout = DurationSetting(
            variable: "LEASEHOLD_NOTIFIER_REQUEST_TIMEOUT_MS", unit: .milliseconds,
            default: NotifierConfiguration.defaultRequestTimeout, range: 100...600_000,
            summary: "Timeout of one Bot API call in ms")
        static let claimTimeout = DurationSetting(
            variable: "LEASEHOLD_NOTIFIER_CLAIM_TIMEOUT_MS", unit: .milliseconds,
            default: NotifierConfiguration.defaultClaimTimeout, range: 200...86_400_000,
            summary: """
                A row sending for longer than this many ms belongs to a dead notifier and is sent again; at least \
                twice the request timeout
                """)
        static let maxAttempts = IntSetting(
            variable: "LEASEHOLD_NOTIFIER_MAX_ATTEMPTS", default: NotifierConfiguration.defaultRetry.maxAttempts,
            range: 1...1_000, summary: "Attempts for 5xx and network failures before a row fails")
        static let retryBase = DurationSetting(
            variable: "LEASEHOLD_NOTIFIER_RETRY_BASE_MS", unit: .milliseconds,
            default: NotifierConfiguration.defaultRetry.base, range: 1...86_400_000,
            summary: "First retry delay in ms, doubled per attempt with jitter")
        static let retryMaxDelay = DurationSetting(
            variable: "LEASEHOLD_NOTIFIER_RETRY_MAX_DELAY_MS", unit: .milliseconds,
            default: NotifierConfiguration.defaultRetry.maxDelay, range: 1...86_400_000,
            summary: "Longest retry delay in ms")
        static let drainTimeout = DurationSetting(
            variable: "LEASEHOLD_DRAIN_TIMEOUT_MS", unit: .milliseconds,
            default: NotifierConfiguration.defaultDrainTimeout, range: 0...3_600_000,
            summary: "SIGTERM drain timeout in ms")

        static let all: [any EnvironmentSetting] = [
            apiBaseURL, name, rate, chatInterval, groupChatInterval, concurrency, pollInterval, requestTimeout,
            claimTimeout, maxAttempts, retryBase, retryMaxDelay, drainTimeout,
        ]
    }

    /// `leasehold console`.
    enum Console {
        static let host = StringSetting(
            variable: "LEASEHOLD_CONSOLE_HOST", default: ConsoleConfiguration.defaultHost, summary: "Listen address")
        static let port = IntSetting(
            variable: "LEASEHOLD_CONSOLE_PORT", default: ConsoleConfiguration.defaultPort, range: 0...65535,
            summary: "Listen port")
        static let readOnly = BoolSetting(
            variable: "LEASEHOLD_CONSOLE_READ_ONLY", default: ConsoleConfiguration.defaultReadOnly,
            summary: "Show everything, change nothing: no replay, no purge")
        static let sessionLifetime = DurationSetting(
            variable: "LEASEHOLD_CONSOLE_SESSION_HOURS", unit: .hours,
            default: ConsoleConfiguration.defaultSessionLifetime, range: 1...720, summary: "Hours a login lasts")
        static let secureCookies = BoolSetting(
            variable: "LEASEHOLD_CONSOLE_SECURE_COOKIES", default: ConsoleConfiguration.defaultSecureCookies,
            summary: "Mark the session cookie Secure, for HTTPS")

        static let all: [any EnvironmentSetting] = [host, port, readOnly, sessionLifetime, secureCookies]
    }

    /// What operators are shown of payloads: `leasehold console` and `leasehold dlq show`.
    enum Redaction {
        static let fields = RedactFieldsSetting(
            variable: "LEASEHOLD_REDACT_FIELDS",
            summary: """
                Payload fields whose values are shown as [redacted], at any depth (a.b: a path from the top): \
                none (off), +a,b (the default list and these) or a,b (exactly these)
                """,
            detail: "A payload that is not strict JSON is not shown at all while any field is redacted.")
        static let all: [any EnvironmentSetting] = [fields]
    }
}
