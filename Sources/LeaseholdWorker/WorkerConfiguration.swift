import Foundation
import LeaseholdCore
import LeaseholdDomain
import LeaseholdQueue

/// How a worker runs. Every field has a default; `leasehold worker` fills them from flags and the
/// environment.
public struct WorkerConfiguration: Sendable {
    /// Redis key layout (`LEASEHOLD_REDIS_PREFIX`).
    public var keys: RedisKeys
    /// The streams to consume, by source name (`telegram`, `bookings`, …).
    public var sources: [String]
    /// This consumer's name in the group; unique per process.
    public var consumerName: String
    /// Entries processed at once (`LEASEHOLD_WORKER_CONCURRENCY`). The worker never holds more
    /// unacknowledged entries than this: each read takes at most the free slots, over all streams together.
    public var concurrency: Int
    /// How long one read waits for new entries when every stream is empty.
    public var readBlock: Duration
    /// Lease TTL (`LEASEHOLD_LEASE_TTL_MS`): long enough to cover a heartbeat gap, short enough
    /// that a dead worker's leases expire before the supervisor's visibility timeout.
    public var leaseTTL: Duration
    /// Heartbeat interval: the lease is renewed this often while its transaction runs (a third of
    /// the TTL by default, so two missed beats still leave it held).
    public var heartbeat: Duration
    /// How long a second delivery of a key waits for the first holder's lease before leaving the
    /// entry pending.
    public var leaseWait: Duration
    /// SIGTERM drain timeout (`LEASEHOLD_DRAIN_TIMEOUT_MS`): in-flight entries get this long to
    /// finish; then their transactions are cancelled (rolled back, left pending, leases released).
    public var drainTimeout: Duration
    /// In-process retries of a transaction that failed with a retryable SQLSTATE (deadlock,
    /// serialization, lock timeout) before the entry goes to the retry schedule. Connection
    /// failures are not counted here: see ``outageWindow``.
    public var transactionAttempts: Int
    /// How long a published booking outcome (`lh:result:<request_id>`) is kept.
    public var resultTTL: Duration
    public var rules: BookingRules
    /// What happens to an entry whose transaction failed: retried later through the retry
    /// schedule, or dead-lettered after the policy's maximum attempts (the supervisor's policy).
    public var retryPolicy: RetryPolicy
    /// Per-transaction `lock_timeout` and `statement_timeout`.
    public var lockTimeout: Duration
    public var statementTimeout: Duration
    /// How long an entry rides out a PostgreSQL or Redis outage (`LEASEHOLD_OUTAGE_WINDOW_MS`):
    /// while its work fails with a connection-class error (SQLSTATE class 08, 57P01/57P02/57P03,
    /// a lost or refused connection) or finds the server read-only (25006, during a failover),
    /// the worker keeps the entry and its lease (heartbeat) and
    /// tries again with backoff, spending no attempt. Past the window the failure takes the
    /// normal path (retry schedule, dead letters).
    public var outageWindow: Duration
    /// The first and the longest pause between tries during an outage (doubling, with jitter).
    public var outageBackoff: ClosedRange<Duration> = .milliseconds(100) ... .seconds(5)

    public init(
        keys: RedisKeys = RedisKeys(), sources: [String] = ["telegram", "yookassa", "bookings"],
        consumerName: String = WorkerConfiguration.defaultConsumerName(),
        concurrency: Int = WorkerConfiguration.defaultConcurrency, readBlock: Duration = .seconds(1),
        leaseTTL: Duration = WorkerConfiguration.defaultLeaseTTL, heartbeat: Duration? = nil,
        leaseWait: Duration = .seconds(2), drainTimeout: Duration = WorkerConfiguration.defaultDrainTimeout,
        transactionAttempts: Int = 5, resultTTL: Duration = .seconds(86_400), rules: BookingRules = BookingRules(),
        retryPolicy: RetryPolicy = RetryPolicy(),
        lockTimeout: Duration = WorkerConfiguration.defaultLockTimeout,
        statementTimeout: Duration = WorkerConfiguration.defaultStatementTimeout,
        outageWindow: Duration = WorkerConfiguration.defaultOutageWindow
    ) {
        self.keys = keys
        self.sources = sources
        self.consumerName = consumerName
        self.concurrency = concurrency
        self.readBlock = readBlock
        self.leaseTTL = leaseTTL
        self.heartbeat = heartbeat ?? leaseTTL / 3
        self.leaseWait = leaseWait
        self.drainTimeout = drainTimeout
        self.transactionAttempts = transactionAttempts
        self.resultTTL = resultTTL
        self.rules = rules
        self.retryPolicy = retryPolicy
        self.lockTimeout = lockTimeout
        self.statementTimeout = statementTimeout
        self.outageWindow = outageWindow
    }

    // The defaults of the settings `leasehold worker` reads (its `--help` shows these).

    /// ``concurrency``'s default.
    public static let defaultConcurrency = 16
    /// ``leaseTTL``'s default.
    public static let defaultLeaseTTL: Duration = .seconds(30)
    /// ``drainTimeout``'s default.
    public static let defaultDrainTimeout: Duration = .seconds(20)
    /// ``lockTimeout``'s default.
    public static let defaultLockTimeout: Duration = .seconds(5)
    /// ``statementTimeout``'s default.
    public static let defaultStatementTimeout: Duration = .seconds(30)
    /// ``outageWindow``'s default: an hour.
    public static let defaultOutageWindow: Duration = .seconds(3_600)

    /// `<hostname>-<pid>-<random>`.
    public static func defaultConsumerName() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "worker"
        return "\(host)-\(getpid())-\(UUID().uuidString.prefix(6).lowercased())"
    }

    /// Every stream of every source (``RedisKeys/streams(_:)-([String])``: one per source on one node, ``RedisKeys/shards`` per source when sharded).
    public var streams: [String] { keys.streams(sources) }
}

extension WorkerConfiguration {
    /// The worker's PostgreSQL session settings, as libpq's `options` (`-c name=value`): the lock
    /// and statement timeouts for every statement of the session. A booking is one statement in
    /// autocommit (no `BEGIN`, so no per-transaction `SET LOCAL`), so its timeouts come from here;
    /// the payment transaction also sets them per transaction. An `options` parameter in
    /// `POSTGRES_URL` replaces these.
    public var postgresSessionOptions: (keyword: String, value: String) {
        (
            "options",
            "-c lock_timeout=\(lockTimeout.millisecondsRoundedUp) -c statement_timeout=\(statementTimeout.millisecondsRoundedUp)"
        )
    }
}
