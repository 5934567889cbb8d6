import LeaseholdCore
import LeaseholdQueue

/// How a supervisor runs. Every field has a default; `leasehold supervisor` fills them from flags
/// and the environment.
public struct SupervisorConfiguration: Sendable {
    public var keys: RedisKeys
    /// The streams to maintain, by source name.
    public var sources: [String]
    /// This process's consumer name in the group, used when it claims stalled entries.
    public var consumerName: String
    /// An entry delivered but not acknowledged for this long, whose lease is not held, is reclaimed
    /// (`LEASEHOLD_VISIBILITY_TIMEOUT_MS`). Keep it well above the lease TTL: a live worker renews
    /// its lease, so its slow entries are never taken; a dead worker's lease expires first.
    public var visibilityTimeout: Duration
    /// How often the leader runs a maintenance pass.
    public var interval: Duration
    /// Entries examined per stream per pass.
    public var batchSize: Int
    public var retryPolicy: RetryPolicy
    /// Inbox rows older than this are deleted (`LEASEHOLD_INBOX_RETENTION_HOURS`). Must exceed any
    /// redelivery window (retries, replays) or a late duplicate would be processed again.
    public var inboxRetention: Duration
    public var leader: LeaderElector.Configuration
    /// A consumer of the group idle this long that owns no pending entry is removed
    /// (`LEASEHOLD_CONSUMER_IDLE_MS`): every worker restart adds a consumer, and nothing else
    /// removes it. Keep it well above the visibility timeout and the workers' read block.
    public var consumerIdleTimeout: Duration
    /// How often the leader records a backlog and throughput sample for the ops console's chart
    /// (``ThroughputSampler``, `LEASEHOLD_SAMPLE_INTERVAL_MS`); 120 are kept.
    public var sampleInterval: Duration

    // The defaults of the settings `leasehold supervisor` reads (its `--help` shows these).

    /// ``visibilityTimeout``'s default.
    public static let defaultVisibilityTimeout: Duration = .seconds(60)
    /// ``interval``'s default.
    public static let defaultInterval: Duration = .seconds(1)
    /// ``inboxRetention``'s default: a week.
    public static let defaultInboxRetention: Duration = .seconds(7 * 86_400)
    /// ``consumerIdleTimeout``'s default: an hour.
    public static let defaultConsumerIdleTimeout: Duration = .seconds(3600)
    /// ``sampleInterval``'s default.
    public static let defaultSampleInterval: Duration = .seconds(30)

    public init(
        keys: RedisKeys = RedisKeys(), sources: [String] = ["telegram", "yookassa", "bookings"],
        consumerName: String = "supervisor",
        visibilityTimeout: Duration = SupervisorConfiguration.defaultVisibilityTimeout,
        interval: Duration = SupervisorConfiguration.defaultInterval, batchSize: Int = 200,
        retryPolicy: RetryPolicy = RetryPolicy(),
        inboxRetention: Duration = SupervisorConfiguration.defaultInboxRetention,
        leader: LeaderElector.Configuration = .init(),
        consumerIdleTimeout: Duration = SupervisorConfiguration.defaultConsumerIdleTimeout,
        sampleInterval: Duration = SupervisorConfiguration.defaultSampleInterval
    ) {
        self.keys = keys
        self.sources = sources
        self.consumerName = consumerName
        self.visibilityTimeout = visibilityTimeout
        self.interval = interval
        self.batchSize = batchSize
        self.retryPolicy = retryPolicy
        self.inboxRetention = inboxRetention
        self.leader = leader
        self.consumerIdleTimeout = consumerIdleTimeout
        self.sampleInterval = sampleInterval
    }

    /// Every stream of every source (``RedisKeys/streams(_:)-([String])``: one per source on one node, ``RedisKeys/shards`` per source when sharded).
    public var streams: [String] { keys.streams(sources) }
}
