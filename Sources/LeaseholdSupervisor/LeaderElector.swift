import Foundation
import LeaseholdQueue
import LeaseholdRedis
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Elects one supervisor leader among any number of candidates, by a lease on
/// ``RedisKeys/leader`` (`lh:leader`) whose value is the holder's ``candidateID``.
///
/// ## Protocol
///
/// - **Acquire**: `SET lh:leader <id> NX PX <ttl>` (or, if the key already holds our own ID — a
///   reply that was lost, a lease we gave up on by time — `PEXPIRE` it). A follower that finds
///   the lease taken tries again after ``Configuration/renewInterval``, or as soon as the holder's
///   remaining TTL runs out if that is sooner, so a leader that died without releasing is replaced
///   right when its lease expires.
/// - **Renew**: every ``Configuration/renewInterval`` (default ttl/3), compare-and-`PEXPIRE`. A
///   reply saying someone else holds the key (or nobody) ends leadership at once.
/// - **Release**: on exit (graceful shutdown or cancellation), compare-and-`DEL`, so the next
///   candidate takes over within one renew interval instead of waiting out the TTL.
///
/// ## Stepping down before the lease could be taken
///
/// Leadership is judged by this process's monotonic clock, never by whether Redis answered. The
/// lease lives at least `ttl` after the server executed the last successful `SET`/`PEXPIRE`, and
/// that happened after we *sent* it. So, with `sent` the `ContinuousClock` instant just before
/// the last successful acquire or renew went out, this process is leader only while
///
///     now < sent + ttl - safetyMargin
///
/// — the ``leadershipDeadline``. ``isLeader`` compares against it on every read, so it turns
/// `false` on time even while the loop is stuck in a call to a Redis that stopped answering
/// (hiredis calls cannot be interrupted; they end at the client's command timeout). The loop
/// races each renewal against the deadline and reports the step-down through
/// `onLeadershipChange(false)` when the deadline wins, without waiting for the stuck call.
/// ``Configuration/safetyMargin`` (default ttl/5) covers clock-rate differences between Redis and
/// this host, and the time leader-only work needs to notice and stop.
///
/// A lease is a guard here as everywhere in Leasehold, never the only safety: the maintenance
/// a leader does (Lua scripts, idempotent inserts) stays correct if two processes ever overlap; the
/// election keeps that from happening in normal operation and keeps the work from being done twice.
///
/// Leader changes are counted in `leasehold_supervisor_leader_changes_total`, with the dimension
/// `change` = `acquired` or `lost`, and logged.
public final class LeaderElector: Service {
    /// Lease timings; every field has a default.
    public struct Configuration: Sendable, Equatable {
        /// How long the lease outlives the last renewal: a dead leader is replaced after at most this.
        public var ttl: Duration
        /// How often the leader renews (and how often a follower tries to acquire).
        public var renewInterval: Duration
        /// How long before the lease could expire the leader stops considering itself leader.
        public var safetyMargin: Duration

        /// - Parameters:
        ///   - renewInterval: default `ttl / 3`: two renewals can fail before the deadline.
        ///   - safetyMargin: default `ttl / 5`.
        public init(ttl: Duration = .seconds(10), renewInterval: Duration? = nil, safetyMargin: Duration? = nil) {
            self.ttl = ttl
            self.renewInterval = renewInterval ?? ttl / 3
            self.safetyMargin = safetyMargin ?? ttl / 5
        }

        /// How long one successful acquire or renew keeps this process leader: `ttl - safetyMargin`.
        public var leadershipSpan: Duration { ttl - safetyMargin }
    }

    /// This candidate's lease value, unique per elector: `<host>-<pid>-<random>`.
    public let candidateID: String
    public let configuration: Configuration
    public let keys: RedisKeys
    private let redis: RedisClient
    private let logger: Logger
    private let acquiredCounter: Counter
    private let lostCounter: Counter
    private let state = Mutex(State())

    private struct State {
        /// Set while the loop considers this process leader; leadership ends at this instant even
        /// if the loop has not noticed yet.
        var deadline: ContinuousClock.Instant?
        var running = false
    }

    /// The name of the leader-changes counter.
    public static let leaderChangesMetric = "leasehold_supervisor_leader_changes_total"

    /// - Parameters:
    ///   - redis: a client for the lease calls; one connection is enough (the elector never makes
    ///     two calls at once), and a client of its own keeps other work from delaying renewals.
    ///   - candidateID: defaults to `<host>-<pid>-<8 random hex digits>`.
    public init(
        redis: RedisClient, keys: RedisKeys, configuration: Configuration = Configuration(),
        candidateID: String? = nil, logger: Logger = Logger(label: "leasehold.supervisor.leader")
    ) {
        precondition(configuration.renewInterval > .zero, "the renew interval must be positive")
        precondition(configuration.safetyMargin >= .zero, "the safety margin cannot be negative")
        precondition(
            configuration.renewInterval < configuration.leadershipSpan,
            "the renew interval must be shorter than ttl - safetyMargin, or no renewal lands in time")
        self.redis = redis
        self.keys = keys
        self.configuration = configuration
        self.candidateID =
            candidateID
            ?? "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-"
            + UUID().uuidString.prefix(8).lowercased()
        var logger = logger
        logger[metadataKey: "candidate"] = "\(self.candidateID)"
        self.logger = logger
        self.acquiredCounter = Counter(label: Self.leaderChangesMetric, dimensions: [("change", "acquired")])
        self.lostCounter = Counter(label: Self.leaderChangesMetric, dimensions: [("change", "lost")])
    }

    /// Whether this process may act as leader right now. Thread-safe, and judged by the clock on
    /// every read (see the type's documentation), so it is `false` from the deadline on even if
    /// the election loop is blocked.
    public var isLeader: Bool { leadershipDeadline != nil }

    /// Until when this process may act as leader, `nil` when it may not. Leader-only work can bound
    /// a step by it.
    public var leadershipDeadline: ContinuousClock.Instant? {
        state.withLock { state in
            guard let deadline = state.deadline, ContinuousClock.now < deadline else { return nil }
            return deadline
        }
    }

    /// Campaigns until graceful shutdown or cancellation, then gives up leadership and releases the
    /// lease.
    ///
    /// The loop runs in a child task at `.high` priority, so that renewals are not queued behind
    /// ordinary work on a busy cooperative pool.
    ///
    /// - Parameter onLeadershipChange: called with `true` on becoming leader and `false` on losing
    ///   it (including on exit), in order, from the election loop (so at high priority). Keep it
    ///   short: renewals wait for it (``isLeader`` stays correct meanwhile, since it is judged by
    ///   the clock). A step-down caused by an unanswered renewal is reported at the deadline, not
    ///   when the call ends.
    public func run(onLeadershipChange: @escaping @Sendable (Bool) async -> Void) async {
        let alreadyRunning = state.withLock { state in
            defer { state.running = true }
            return state.running
        }
        precondition(!alreadyRunning, "a LeaderElector runs one election loop at a time")
        logger.info(
            "leader election started",
            metadata: [
                "key": "\(keys.leader)", "ttl": "\(configuration.ttl)",
                "renew_interval": "\(configuration.renewInterval)",
            ])
        // At high priority: Swift's cooperative pool serves higher-priority jobs first, so a pool
        // busy with the very maintenance this election guards does not delay renewals. (Measured on
        // Linux under 500 concurrent HTTP tasks: wake-ups at default priority came up to 0.7 s late,
        // at high priority under 0.06 s; a lease renewed every ttl/3 tolerates ttl - ttl/5 - ttl/3.)
        // It cannot help when every timer of the process stalls (seen for seconds while a whole
        // test binary starts on two cores; a dedicated task executor does not help either, as
        // wake-ups pass through the global queue): then the leader steps down, which is safe.
        await withTaskGroup(of: Void.self) { group in
            group.addTask(priority: .high) { [self] in
                await cancelWhenGracefulShutdown { [self] in
                    await campaign(onLeadershipChange)
                }
                await resign(onLeadershipChange)
            }
        }
        state.withLock { $0.running = false }
        logger.info("leader election stopped")
    }

    /// `Service`: campaigns without a callback; read ``isLeader`` to gate leader-only work.
    public func run() async throws {
        await run(onLeadershipChange: { _ in })
    }

    // MARK: - Election loop

    private func campaign(_ notify: @escaping @Sendable (Bool) async -> Void) async {
        let clock = ContinuousClock()
        var nextRenewal = clock.now
        var failures = 0
        var knownLeader: String?
        while !Task.isCancelled {
            if let deadline = state.withLock({ $0.deadline }) {
                // Leader: renew on schedule; give up at the deadline whatever happens.
                do {
                    try await Task.sleep(until: min(nextRenewal, deadline), clock: clock)
                } catch {
                    return
                }
                if clock.now >= deadline {
                    await stepDown(reason: "the lease could not be renewed in time", notify)
                    continue
                }
                let sent = clock.now
                switch await renew(deadline: deadline, notify) {
                case .renewed:
                    state.withLock { state in
                        if state.deadline != nil { state.deadline = sent + configuration.leadershipSpan }
                    }
                    failures = 0
                    nextRenewal = sent + configuration.renewInterval
                case .lost(let holder):
                    knownLeader = holder
                    await stepDown(reason: holder.map { "the lease is held by \($0)" } ?? "the lease vanished", notify)
                case .failed(let error):
                    failures += 1
                    logFailure("renewing the leader lease failed; retrying until the deadline", error, failures)
                    nextRenewal = clock.now + configuration.renewInterval / 4
                case .expired:
                    // `renew` stepped down already.
                    failures = 0
                case .cancelled:
                    return
                }
            } else {
                // Follower: try to acquire.
                let sent = clock.now
                var wait = configuration.renewInterval
                do {
                    let reply = try await Self.acquire(
                        key: keys.leader, candidate: candidateID, ttl: configuration.ttl, via: redis)
                    failures = 0
                    switch reply {
                    case .acquired:
                        let deadline = sent + configuration.leadershipSpan
                        if clock.now < deadline {
                            knownLeader = candidateID
                            await become(deadline: deadline, notify)
                            nextRenewal = sent + configuration.renewInterval
                            continue
                        }
                        // The answer came too late to lead on; the next try extends our own key.
                        wait = .zero
                    case .held(let holder, let remaining):
                        if holder != knownLeader {
                            logger.info("following the supervisor leader", metadata: ["leader": "\(holder)"])
                            knownLeader = holder
                        }
                        if let remaining, remaining < wait {
                            // Wake right as the holder's lease runs out (it may have died).
                            wait = remaining + .milliseconds(1)
                        }
                    }
                } catch is CancellationError {
                    return
                } catch {
                    failures += 1
                    logFailure("trying to acquire the leader lease failed", "\(error)", failures)
                }
                do {
                    try await Task.sleep(for: wait)
                } catch {
                    return
                }
            }
        }
    }

    private enum RenewOutcome: Sendable {
        case renewed
        case lost(holder: String?)
        case failed(String)
        case expired
        case cancelled
    }

    /// One renewal, raced against `deadline`. If the deadline comes first, steps down at once and
    /// then waits for the call to end (it cannot be interrupted).
    private func renew(
        deadline: ContinuousClock.Instant, _ notify: @escaping @Sendable (Bool) async -> Void
    ) async -> RenewOutcome {
        await withTaskGroup(of: RenewOutcome.self) { group in
            group.addTask { [self] in
                do {
                    let reply = try await Self.renew(
                        key: keys.leader, candidate: candidateID, ttl: configuration.ttl, via: redis)
                    switch reply {
                    case .renewed: return .renewed
                    case .lost(let holder): return .lost(holder: holder)
                    }
                } catch is CancellationError {
                    return .cancelled
                } catch {
                    return .failed("\(error)")
                }
            }
            group.addTask {
                do {
                    try await Task.sleep(until: deadline, clock: .continuous)
                } catch {
                    return .cancelled
                }
                return .expired
            }
            let first = await group.next() ?? .cancelled
            group.cancelAll()
            if case .expired = first {
                await stepDown(reason: "Redis did not answer the renewal before the lease could expire", notify)
            }
            return first
        }
    }

    private func become(deadline: ContinuousClock.Instant, _ notify: @escaping @Sendable (Bool) async -> Void) async {
        state.withLock { $0.deadline = deadline }
        acquiredCounter.increment()
        logger.notice("became the supervisor leader", metadata: ["key": "\(keys.leader)"])
        await notify(true)
    }

    /// Ends leadership (if held): `isLeader` turns false first, then the callback runs.
    private func stepDown(
        reason: String, level: Logger.Level = .warning, _ notify: @escaping @Sendable (Bool) async -> Void
    ) async {
        let wasLeader = state.withLock { state in
            defer { state.deadline = nil }
            return state.deadline != nil
        }
        guard wasLeader else { return }
        lostCounter.increment()
        logger.log(level: level, "stepped down as the supervisor leader", metadata: ["reason": "\(reason)"])
        await notify(false)
    }

    /// On exit: step down, then compare-and-delete the lease so a follower need not wait out the TTL.
    private func resign(_ notify: @escaping @Sendable (Bool) async -> Void) async {
        await stepDown(reason: "shutting down", level: .notice, notify)
        // In a task of its own: the caller may be cancelled, and the pool refuses work to a
        // cancelled task. Awaited at once, so nothing outlives `run`.
        let release = Task { [redis, keys, candidateID] in
            try await Self.release(key: keys.leader, candidate: candidateID, via: redis)
        }
        switch await release.result {
        case .success(true): logger.info("released the leader lease")
        case .success(false): break
        case .failure(let error):
            logger.warning("could not release the leader lease; it expires by itself", metadata: ["error": "\(error)"])
        }
    }

    private func logFailure(_ message: Logger.Message, _ error: String, _ failures: Int) {
        // The first failure of a run, then one in ten, so an outage does not flood the log.
        guard failures == 1 || failures % 10 == 0 else { return }
        logger.warning(message, metadata: ["error": "\(error)", "consecutive_failures": "\(failures)"])
    }

    // MARK: - Redis calls

    enum AcquireReply: Sendable, Equatable {
        case acquired
        /// Someone else holds the lease, for `remaining` more (`nil`: no TTL, set by hand).
        case held(by: String, remaining: Duration?)
    }

    enum RenewReply: Sendable, Equatable {
        case renewed
        case lost(holder: String?)
    }

    // KEYS: leader. ARGV: candidate, ttl (ms).
    static let acquireScript = RedisScript(
        """
        local holder = redis.call('GET', KEYS[1])
        if holder == ARGV[1] then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            return {1}
        end
        if not holder then
            redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
            return {1}
        end
        return {0, holder, redis.call('PTTL', KEYS[1])}
        """)

    // KEYS: leader. ARGV: candidate, ttl (ms). Returns 1, or the current holder (nil if none).
    static let renewScript = RedisScript(
        """
        local holder = redis.call('GET', KEYS[1])
        if holder == ARGV[1] then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            return 1
        end
        return holder
        """)

    // KEYS: leader. ARGV: candidate.
    static let releaseScript = RedisScript(
        """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0
        """)

    static func acquire(
        key: String, candidate: String, ttl: Duration, via runner: some RedisCommandRunner
    ) async throws -> AcquireReply {
        let reply = try await runner.evaluate(
            acquireScript, keys: [key], arguments: [candidate, ttl.redisMilliseconds])
        guard let parts = reply.array, let first = parts.first?.int else {
            throw RedisError(source: .server, code: .proto, message: "leader acquire script returned \(reply)")
        }
        if first == 1 { return .acquired }
        guard parts.count == 3, let holder = parts[1].string, let pttl = parts[2].int else {
            throw RedisError(source: .server, code: .proto, message: "leader acquire script returned \(reply)")
        }
        return .held(by: holder, remaining: pttl >= 0 ? .milliseconds(pttl) : nil)
    }

    static func renew(
        key: String, candidate: String, ttl: Duration, via runner: some RedisCommandRunner
    ) async throws -> RenewReply {
        let reply = try await runner.evaluate(renewScript, keys: [key], arguments: [candidate, ttl.redisMilliseconds])
        switch reply {
        case .integer(1): return .renewed
        case .null: return .lost(holder: nil)
        case .bulk: return .lost(holder: reply.string)
        default: throw RedisError(source: .server, code: .proto, message: "leader renew script returned \(reply)")
        }
    }

    static func release(key: String, candidate: String, via runner: some RedisCommandRunner) async throws -> Bool {
        try await runner.evaluate(releaseScript, keys: [key], arguments: [candidate]).int == 1
    }
}
