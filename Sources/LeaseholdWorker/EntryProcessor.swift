import Foundation
import LeaseholdCore
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdReactor
import LeaseholdRedis
import Logging
import Metrics
import Synchronization

/// Processes stream entries: lease → the kind's transaction (``MessageHandler``) → completion.
///
/// An entry is processed on the reactor of ``database`` (its task prefers that executor): the
/// handler's statements are sent and their results read on the reactor's thread, so a message's
/// PostgreSQL round trip costs no thread hand-off.
///
/// Redis work is per read batch, not per entry: the leases of a whole batch are taken by the
/// script call that reads it (``StreamConsumer/read(count:block:first:leasing:via:)``, or
/// ``lease(_:)`` for entries read otherwise), one heartbeat renews every lease the worker holds
/// (``LeaseKeeper``), and the completions (XACK + publish + release) asked for in one reactor turn
/// go as one script call (``CompletionBatcher``) on a non-blocking connection
/// (``RedisClient``), where every command queued in one reactor turn leaves in one write. So
/// under load a message costs PostgreSQL one round trip and Redis a fraction of one.
struct EntryProcessor: Sendable {
    let configuration: WorkerConfiguration
    /// For what is not on the hot path (dead letters).
    let deadLetterDatabase: PostgresClient
    /// The handlers' pool, non-blocking, on its reactor.
    let database: PostgresClient
    /// Leases, completions, retries and dead letters: non-blocking, on the same reactor;
    /// concurrent callers share its round trips (every command queued in one reactor turn leaves
    /// in one write).
    let redis: RedisClient
    let logger: Logger
    let handlers: [String: any MessageHandler]
    let keeper: LeaseKeeper
    /// Completions of one reactor turn, in one script call.
    let completions: CompletionBatcher
    let scheduler: RetryScheduler
    let deadLetters: DeadLetterStore
    private let tokens = LeaseTokens()
    private let counters = ProcessedCounters()

    /// - Parameters:
    ///   - deadLetterDatabase: a small pool for the dead letters.
    ///   - database: the handlers' pool; give it ``WorkerConfiguration/concurrency`` connections.
    ///   - redis: for leases, completions, retries and dead letters, on `database`'s reactor.
    ///   - handlers: one per message kind (default: ``WorkerService/defaultHandlers(configuration:)``).
    ///   - keeper: the leases to renew; the caller runs its heartbeat (``LeaseKeeper/run(every:consumer:redis:logger:)``).
    init(
        configuration: WorkerConfiguration, deadLetterDatabase: PostgresClient, database: PostgresClient,
        redis: RedisClient, logger: Logger, handlers: [any MessageHandler]? = nil,
        keeper: LeaseKeeper = LeaseKeeper()
    ) {
        precondition(redis.reactor === database.reactor, "one reactor for the worker's connections")
        self.configuration = configuration
        self.deadLetterDatabase = deadLetterDatabase
        self.database = database
        self.redis = redis
        // Each entry's logger sets three metadata keys: see DeferredMetadataLogHandler.
        var entryLogger = logger
        if !(logger.handler is DeferredMetadataLogHandler) {
            entryLogger.handler = DeferredMetadataLogHandler(wrapping: logger.handler)
        }
        self.logger = entryLogger
        let handlers = handlers ?? WorkerService.defaultHandlers(configuration: configuration)
        self.handlers = Dictionary(handlers.map { ($0.kind, $0) }, uniquingKeysWith: { first, _ in first })
        self.keeper = keeper
        self.completions = CompletionBatcher(completion: Completion(keys: configuration.keys), client: redis)
        self.scheduler = RetryScheduler(keys: configuration.keys)
        self.deadLetters = DeadLetterStore(keys: configuration.keys)
    }

    /// An entry and its lease, taken or not yet (`held == false`: another worker held it, or Redis
    /// did not answer; ``process(_:)-(Claimed)`` then waits for it up to ``WorkerConfiguration/leaseWait``).
    typealias Claimed = StreamConsumer.LeasedEntry

    /// How the worker's read names and times the leases it takes with the entries: owners are
    /// `<consumer>:<token>:<entry id>`, the token new for every call.
    func leaseTerms() -> StreamConsumer.LeaseTerms {
        StreamConsumer.LeaseTerms(
            keys: configuration.keys, ownerPrefix: "\(configuration.consumerName):\(tokens.next()):",
            ttl: configuration.leaseTTL)
    }

    /// Takes the leases of entries already read, in one script call (the worker's read takes
    /// them as it reads, see ``StreamConsumer/read(count:block:first:leasing:via:)``).
    func lease(_ entries: [StreamEntry]) async -> [Claimed] {
        await withTaskExecutorPreference(database.reactor) { await leaseOnReactor(entries) }
    }

    private func leaseOnReactor(_ entries: [StreamEntry]) async -> [Claimed] {
        guard !entries.isEmpty else { return [] }
        let terms = leaseTerms()
        let leases = entries.map(terms.lease(of:))
        let taken: [Bool]
        do {
            taken = try await Lease.acquire(leases, via: redis)
        } catch {
            // Each entry tries again on its own (riding out an outage) in process(_:).
            logger.warning("could not take the batch's leases; trying one by one", metadata: ["error": "\(error)"])
            taken = Array(repeating: false, count: entries.count)
        }
        return zip(entries, zip(leases, taken)).map { Claimed(entry: $0, lease: $1.0, held: $1.1) }
    }

    /// Takes the lease and processes `entry` (a batch of one).
    func process(_ entry: StreamEntry) async {
        for claimed in await lease([entry]) {
            await process(claimed)
        }
    }

    /// Processes a claimed entry: waits for its lease if another worker held it, runs its kind's
    /// handler, then acknowledges (or schedules a retry, or dead-letters) and releases the lease.
    /// Runs on ``database``'s reactor (a caller already there, as the worker's tasks are, stays).
    func process(_ claimed: Claimed) async {
        await withTaskExecutorPreference(database.reactor) { await processOnReactor(claimed) }
    }

    private func processOnReactor(_ claimed: Claimed) async {
        let entry = claimed.entry
        let lease = claimed.lease
        var logger = self.logger
        logger[metadataKey: "key"] = "\(entry.key)"
        logger[metadataKey: "entry"] = "\(entry.id)"
        logger[metadataKey: "attempt"] = "\(entry.attempt)"
        let context = HandlerContext(database: database, logger: logger, configuration: configuration)

        if !claimed.held {
            do {
                guard try await acquire(lease, context: context) else {
                    logger.notice("lease held by another worker; leaving the entry pending")
                    return
                }
            } catch {
                logger.error("could not take the lease; leaving the entry pending", metadata: ["error": "\(error)"])
                return
            }
        }
        keeper.hold(lease, for: entry)
        defer { keeper.drop(lease) }

        guard let handler = handlers[entry.kind] else {
            await deadLetter(entry, reason: "unknown kind \(entry.kind)", logger: logger)
            await release(lease, logger: logger)
            return
        }
        await run(handler, entry: entry, lease: lease, context: context)
    }

    private func run<Handler: MessageHandler>(
        _ handler: Handler, entry: StreamEntry, lease: Lease, context: HandlerContext
    ) async {
        let logger = context.logger
        let message: Handler.Message
        do {
            message = try handler.decode(entry)
        } catch {
            // Can never succeed: dead-letter at once, no retries.
            await deadLetter(entry, reason: error.description, logger: logger)
            await release(lease, logger: logger)
            return
        }

        let handled: HandledMessage
        do {
            handled = try await handler.handle(message, entry: entry, context: context)
        } catch  where Self.isOurCancellation(error) {
            logger.notice("cancelled during shutdown; rolled back, entry left pending")
            await release(lease, logger: logger)
            return
        } catch {
            await fail(entry, error: error, logger: logger)
            await release(lease, logger: logger)
            return
        }

        // COMMIT happened: acknowledge, publish, release — atomically, in a shared pipeline.
        keeper.completing(lease)
        do {
            try await context.ridingOutOutages("acknowledging") {
                try await completions.complete(
                    completions.completion.item(
                        entry, lease: lease, requestID: handled.published?.requestID, result: handled.published?.body,
                        resultTTL: configuration.resultTTL, keepExisting: handled.published?.keepExisting ?? false))
            }
            counters.increment(kind: entry.kind, outcome: handled.outcome, duplicate: handled.duplicate)
            if !handled.duplicate { counters.recordEndToEnd(enqueuedAtMilliseconds: entry.enqueuedAtMilliseconds) }
            logger.debug(
                "processed", metadata: ["outcome": "\(handled.outcome)", "duplicate": "\(handled.duplicate)"])
        } catch {
            // Committed but not acknowledged: the entry will be redelivered and the inbox makes
            // that redelivery a no-op that publishes the recorded outcome.
            logger.error(
                "committed but could not acknowledge; the redelivery will be a no-op",
                metadata: ["error": "\(error)"])
        }
    }

    /// Whether `error` is this task being cancelled (a drain that timed out) rather than a failure
    /// of the message. A cancelled task's statement is cancelled with `PQcancel`, and PostgreSQL
    /// reports that as SQLSTATE 57014 inside a ``PostgresTransactionError`` or ``PostgresError``,
    /// not as a `CancellationError`; so any error that ends a cancelled task counts as the
    /// cancellation: the entry stays pending, no attempt is spent, nothing is scheduled. (A
    /// `statement_timeout`, also 57014, arrives in a task that was not cancelled: a failure.)
    static func isOurCancellation(_ error: any Error) -> Bool {
        error is CancellationError || Task.isCancelled
    }

    /// Whether `error` says the server could not be reached rather than that the message is wrong:
    /// SQLSTATE class 08 (connection exception), 57P01/57P02/57P03 (the server is shutting down,
    /// crashed, or not accepting connections yet), 25006 (the server is read-only: a session left
    /// on a node demoted or not yet promoted in a failover; the pool replaces that connection), a
    /// connection libpq lost or could not open, a Redis connection that failed or timed out.
    static func isConnectionFailure(_ error: any Error) -> Bool {
        switch error {
        case let error as PostgresTransactionError:
            return error.postgresError.map { isConnectionFailure(postgres: $0) } ?? false
        case let error as PostgresError:
            return isConnectionFailure(postgres: error)
        case let error as RedisError:
            return error.source == .connection
        default:
            return false
        }
    }

    private static func isConnectionFailure(postgres error: PostgresError) -> Bool {
        error.source == .connection || error.sqlState.hasPrefix("08")
            || ["57P01", "57P02", "57P03", SQLState.readOnlySQLTransaction].contains(error.sqlState)
    }

    /// The transaction failed: schedule the next attempt (acknowledging this one atomically) or,
    /// past the policy's limit, dead-letter the entry. If even that fails, the entry stays pending
    /// and the supervisor reclaims it after the visibility timeout.
    private func fail(_ entry: StreamEntry, error: any Error, logger: Logger) async {
        let message = "\(error)"
        switch configuration.retryPolicy.decide(attempt: entry.attempt, now: Date(), kind: entry.kind) {
        case .retry(let at, let delay):
            do {
                _ = try await scheduler.schedule(
                    entry: entry, at: at, lastError: message, worker: configuration.consumerName, via: redis)
                Counter(label: "leasehold_worker_retries_scheduled_total").increment()
                logger.warning(
                    "transaction failed; retry scheduled", metadata: ["error": "\(message)", "in": "\(delay)"])
            } catch {
                logger.error(
                    "transaction failed and the retry could not be scheduled; entry left pending",
                    metadata: ["error": "\(message)", "schedule_error": "\(error)"])
            }
        case .deadLetter(let limit):
            do {
                try await deadLetters.deadLetter(
                    entry, reason: "\(message); \(limit)", worker: configuration.consumerName,
                    postgres: deadLetterDatabase,
                    redis: redis)
                Counter(label: "leasehold_worker_dead_letters_total").increment()
                logger.error("transaction failed for the last time; dead-lettered", metadata: ["error": "\(message)"])
            } catch {
                logger.error("could not dead-letter; entry left pending", metadata: ["error": "\(error)"])
            }
        }
    }

    /// An entry that can never succeed: dead-letter it at once, no retries.
    private func deadLetter(_ entry: StreamEntry, reason: String, logger: Logger) async {
        do {
            try await deadLetters.deadLetter(
                entry, reason: reason, worker: configuration.consumerName, postgres: deadLetterDatabase, redis: redis)
            logger.error("dead-lettered", metadata: ["reason": "\(reason)"])
        } catch {
            logger.error("could not dead-letter; entry left pending", metadata: ["error": "\(error)"])
        }
    }

    /// Takes the lease another worker held at the batch's acquisition, trying every 50 ms for up
    /// to `leaseWait`.
    private func acquire(_ lease: Lease, context: HandlerContext) async throws -> Bool {
        let deadline = ContinuousClock.now + configuration.leaseWait
        while true {
            let acquired = try await context.ridingOutOutages("taking the lease") {
                try await lease.acquire(via: redis)
            }
            if acquired { return true }
            if ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Releases the lease even when the calling task is cancelled (a SIGTERM drain that timed
    /// out): the release runs in a task of its own (on the reactor), which does not inherit the
    /// cancellation, and is awaited at once.
    private func release(_ lease: Lease, logger: Logger) async {
        let redis = redis
        do {
            _ = try await Task(executorPreference: redis.reactor) { try await lease.release(via: redis) }.value
        } catch {
            logger.warning("could not release the lease; it expires by itself", metadata: ["error": "\(error)"])
        }
    }
}

/// Makes lease owners unique per acquisition within the process.
final class LeaseTokens: Sendable {
    private let counter = Atomic<UInt64>(0)
    func next() -> UInt64 { counter.add(1, ordering: .relaxed).newValue }
}

/// `leasehold_worker_processed_total` by kind, outcome and duplicate, looked up once per label set.
final class ProcessedCounters: Sendable {
    private let counters = Mutex<[String: Counter]>([:])
    /// From a message's first enqueue (`enqueued_at`, kept across retries) to its transaction's
    /// acknowledgement, for messages processed for the first time (not redeliveries the inbox
    /// recognised).
    private let endToEnd = Timer(label: "leasehold_worker_end_to_end_seconds", preferredDisplayUnit: .seconds)

    init() {
        // At 0 from the start: a series that appears with its first increment has no earlier
        // sample for rate() or increase() to compare with, so an alert on it would miss the first.
        _ = Counter(label: "leasehold_worker_retries_scheduled_total")
        _ = Counter(label: "leasehold_worker_dead_letters_total")
    }

    /// Records an entry's latency from its enqueue, when it has that time (`enqueued_at` in ms).
    func recordEndToEnd(enqueuedAtMilliseconds: Int64, now: Date = Date()) {
        let elapsed = now.timeIntervalSince1970 * 1000 - Double(enqueuedAtMilliseconds)
        guard enqueuedAtMilliseconds > 0, elapsed >= 0 else { return }
        endToEnd.recordNanoseconds(Int64(elapsed * 1_000_000))
    }

    func increment(kind: String, outcome: String, duplicate: Bool) {
        let key = "\(kind)|\(outcome)|\(duplicate)"
        let counter = counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(
                label: "leasehold_worker_processed_total",
                dimensions: [("kind", kind), ("outcome", outcome), ("duplicate", String(duplicate))])
            counters[key] = counter
            return counter
        }
        counter.increment()
    }
}
