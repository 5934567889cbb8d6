import Foundation
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdReactor
import LeaseholdRedis
import Logging
import ServiceLifecycle
import Synchronization

/// The `leasehold worker` role as a `Service`.
///
/// One loop reads from the consumer group, taking at most as many entries as it has free slots
/// (``WorkerConfiguration/concurrency``) in total over all streams and taking the leases
/// `lh:lease:<key>` of the whole batch in the same script call (see
/// ``StreamConsumer/read(count:block:first:leasing:via:)``), and hands each entry to a child task that:
///
/// 1. waits briefly for its lease if another worker held it;
/// 2. runs its kind's ``MessageHandler`` — **one** PostgreSQL transaction (for a booking, one
///    statement: the function `leasehold_book`), retrying retryable SQLSTATEs a few times in
///    process;
/// 3. after COMMIT, and only then, acknowledges the entry, publishes the outcome and releases the
///    lease, atomically (``Completion``), in one script call with the other completions of the
///    same reactor turn (``CompletionBatcher``).
///
/// One heartbeat (``LeaseKeeper``) renews every lease the worker holds, in one call per interval.
///
/// Everything runs on one thread, the reactor of the handlers' PostgreSQL pool: the read loop,
/// the heartbeat and every entry's task prefer it as their executor, and the hot path's
/// connections (PostgreSQL, and the two Redis clients) are non-blocking, with their sockets on
/// that reactor. So an entry is read, its transaction sent and answered, and its completion sent
/// without any thread hand-off, and one wake-up serves every connection that is ready (blocking
/// clients on a thread per connection cost about 6.7 context switches per message). Dead letters
/// go through a second, small PostgreSQL pool on the same reactor. When to read and how much is
/// ``ReadPacing``'s decision.
///
/// A transaction that fails is never acknowledged as done: the entry goes to the retry schedule
/// (XACK + ZADD in one script) or, past the retry policy's limit, to the dead letters.
///
/// Graceful shutdown (SIGTERM): stop reading, give in-flight entries ``WorkerConfiguration/drainTimeout``
/// from the signal to finish, then cancel the rest (their statements are cancelled and rolled
/// back, their leases released, their entries left pending, no attempt spent), and return. The
/// signal wakes the loop even when every slot is busy, so the drain never starts late.
public struct WorkerService: Service {
    public let configuration: WorkerConfiguration
    private let deadLetterDatabase: PostgresClient
    private let database: PostgresClient
    private let redis: RedisClient
    private let readWait: RedisClient
    private let logger: Logger
    private let processor: EntryProcessor
    private let reading = ReadingFlag()

    /// Whether the worker takes entries: its connections are open and warmed up and its read loop
    /// runs, until a shutdown signal stops it. `leasehold worker`'s `/readyz` answers 503 while it
    /// is not, so a replica starting under load is not counted on before it can work.
    public var isReading: Bool { reading.value.load(ordering: .acquiring) }

    /// - Parameters:
    ///   - deadLetterDatabase: a small pool for the dead letters (a couple of connections is enough).
    ///   - database: the handlers' pool, on the worker's reactor: at least
    ///     ``WorkerConfiguration/concurrency`` connections, so no entry waits for one.
    ///   - redis: for leases, heartbeats, completions, retries and dead letters, on
    ///     `database`'s reactor.
    ///   - readWait: a separate client, on the same reactor, for the read's blocking wait, so that it
    ///     never holds up the commands of the processing tasks.
    public init(
        configuration: WorkerConfiguration, deadLetterDatabase: PostgresClient, database: PostgresClient,
        redis: RedisClient, readWait: RedisClient, logger: Logger
    ) {
        precondition(readWait.reactor === database.reactor, "one reactor for the worker's connections")
        self.configuration = configuration
        self.deadLetterDatabase = deadLetterDatabase
        self.database = database
        self.redis = redis
        self.readWait = readWait
        self.logger = logger
        self.processor = EntryProcessor(
            configuration: configuration, deadLetterDatabase: deadLetterDatabase, database: database, redis: redis,
            logger: logger)
    }

    /// The longest a busy worker's read waits for more free slots, so that it carries several
    /// entries (a read is one round trip, whatever it carries).
    static let readCoalescing = Duration.milliseconds(2)

    /// The message kinds a worker handles: `booking` and `yookassa.notification`. A new kind is
    /// a ``MessageHandler`` added here (and the migration its transaction needs).
    static func defaultHandlers(configuration: WorkerConfiguration) -> [any MessageHandler] {
        [BookingHandler(transaction: BookingTransaction(rules: configuration.rules)), PaymentHandler()]
    }

    public func run() async throws {
        try await withTaskExecutorPreference(database.reactor) { try await runOnReactor() }
    }

    private func runOnReactor() async throws {
        let consumer = StreamConsumer(streams: configuration.streams, consumer: configuration.consumerName)
        try await ensureGroups(consumer)
        // One connection per slot, opened and warmed up for every kind before the first read
        // rather than by the first burst.
        let handlers = processor.handlers.values.sorted { $0.kind < $1.kind }
        // A warm-up that fails (say, the schema is behind) fails on every connection: one line per
        // kind, with the first error.
        let failures = Mutex<[String: (connections: Int, error: String)]>([:])
        let connections = await database.open(configuration.concurrency) { connection in
            for handler in handlers {
                do {
                    try await handler.warmUp(on: connection)
                } catch {
                    failures.withLock { $0[handler.kind, default: (0, "\(error)")].connections += 1 }
                }
            }
        }
        for (kind, failure) in failures.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            logger.warning(
                "warming up connections failed; their first messages pay for it instead",
                metadata: ["kind": "\(kind)", "connections": "\(failure.connections)", "error": "\(failure.error)"])
        }
        logger.info(
            "worker started",
            metadata: [
                "consumer": "\(configuration.consumerName)", "streams": "\(configuration.streams)",
                "concurrency": "\(configuration.concurrency)", "postgres_connections": "\(connections)",
            ])

        reading.value.store(true, ordering: .releasing)
        let inFlight = InFlightCount()
        let shutdown = ShutdownRequest()
        // Wakes the loop to look again: an entry finished, the shutdown signal came, the drain
        // deadline passed. One buffered wake-up is enough, the loop re-checks everything.
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        var wakeup = wakeups.makeAsyncIterator()

        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { [processor, configuration, redis, logger] in
                    await processor.keeper.run(
                        every: configuration.heartbeat, consumer: configuration.consumerName, redis: redis,
                        logger: logger)
                }
                var pacing = ReadPacing(concurrency: configuration.concurrency, coalescing: Self.readCoalescing)
                var rotation = 0
                while !shutdown.isRequested && !Task.isCancelled {
                    let count: Int
                    switch pacing.next(inFlight: inFlight.value, now: .now) {
                    case .waitForAnEntry, .keepCoalescing:
                        // Woken when an entry finishes, the coalescing wait ends, or the signal
                        // comes (so a saturated worker starts draining at once).
                        await wakeup.next()
                        continue
                    case .startCoalescing(let until):
                        group.addTask {
                            try? await Task.sleep(until: until)
                            wake.yield()
                        }
                        await wakeup.next()
                        continue
                    case .read(let free):
                        count = free
                    }
                    let batch: StreamConsumer.LeasedBatch
                    do {
                        let terms = processor.leaseTerms()
                        batch = try await consumer.read(
                            count: count, block: configuration.readBlock, first: rotation, leasing: terms, via: readWait
                        )
                        rotation &+= 1
                        pacing.readSucceeded()
                    } catch {
                        logger.error("reading the streams failed; retrying", metadata: ["error": "\(error)"])
                        try? await Task.sleep(for: pacing.readFailed())
                        continue
                    }
                    for broken in batch.undecodable {
                        await deadLetterUndecodable(broken)
                    }
                    for claimed in batch.entries {
                        inFlight.add(1)
                        group.addTask {
                            await processor.process(claimed)
                            inFlight.add(-1)
                            wake.yield()
                        }
                    }
                }

                // Draining: no more reads; in-flight entries get the drain timeout, counted from
                // the signal (not from whenever the loop noticed it).
                let deadline = (shutdown.requestedAt ?? .now) + configuration.drainTimeout
                logger.info(
                    "draining",
                    metadata: ["in_flight": "\(inFlight.value)", "timeout": "\(configuration.drainTimeout)"])
                if inFlight.value > 0 {
                    group.addTask {
                        try? await Task.sleep(until: deadline)
                        wake.yield()
                    }
                }
                while inFlight.value > 0, ContinuousClock.now < deadline, !Task.isCancelled {
                    await wakeup.next()
                }
                let abandoned = inFlight.value
                if abandoned > 0 {
                    logger.warning(
                        "drain timeout: cancelling in-flight entries; they stay pending for the supervisor",
                        metadata: ["in_flight": "\(abandoned)"])
                }
                group.cancelAll()  // the abandoned entries, the deadline timer, the heartbeat
            }
        } onGracefulShutdown: {
            reading.value.store(false, ordering: .releasing)
            shutdown.request()
            wake.yield()
        }
        reading.value.store(false, ordering: .releasing)
        wake.finish()
        logger.info("worker stopped", metadata: ["consumer": "\(configuration.consumerName)"])
    }

    /// An entry that is not even a Leasehold message can never succeed: dead-letter it at once.
    private func deadLetterUndecodable(_ broken: StreamEntryDecodingError) async {
        let metadata: Logger.Metadata = [
            "stream": "\(broken.stream)", "entry": "\(broken.entryID ?? "?")", "reason": "\(broken.reason)",
        ]
        do {
            try await DeadLetterStore(keys: configuration.keys).deadLetterUndecodable(
                broken, worker: configuration.consumerName, postgres: deadLetterDatabase, redis: redis)
            logger.error("undecodable stream entry dead-lettered", metadata: metadata)
        } catch {
            logger.error(
                "undecodable stream entry could not be dead-lettered; left pending",
                metadata: metadata.merging(["error": "\(error)"]) { $1 })
        }
    }

    private func ensureGroups(_ consumer: StreamConsumer) async throws {
        var attempt = 0
        while true {
            do {
                try await consumer.ensureGroups(via: readWait)
                return
            } catch let error as RedisError where error.isRetryable && !Task.isShuttingDownGracefully {
                attempt += 1
                logger.warning("Redis unavailable; retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                try await Task.sleep(for: .milliseconds(min(5_000, 100 * (1 << min(attempt, 6)))))
            }
        }
    }
}

/// When graceful shutdown was requested: set once, by the shutdown handler, at the signal.
final class ShutdownRequest: Sendable {
    private let instant = Mutex<ContinuousClock.Instant?>(nil)
    var requestedAt: ContinuousClock.Instant? { instant.withLock { $0 } }
    var isRequested: Bool { requestedAt != nil }
    func request() { instant.withLock { $0 = $0 ?? .now } }
}

/// The number of entries being processed, shared by the read loop and the processing tasks.
final class InFlightCount: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func add(_ delta: Int) { count.withLock { $0 += delta } }
}

/// ``WorkerService/isReading``'s storage, shared by the copies of the service value.
private final class ReadingFlag: Sendable {
    let value = Atomic<Bool>(false)
}
