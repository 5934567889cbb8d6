import LeaseholdPostgres
import LeaseholdQueue
import Logging

/// The work for one message kind (the stream entry's `kind` field): how its payload decodes and
/// what its one PostgreSQL transaction is.
///
/// Everything around it is the same for every kind and is not the handler's business: the lease
/// and its heartbeat, the acknowledgement and the published outcome after COMMIT, retries with
/// backoff, dead letters, riding out an outage, cancellation on shutdown (``EntryProcessor``). So
/// a new kind is one type conforming to this protocol, registered with the worker
/// (``WorkerService/defaultHandlers(configuration:)``), plus the migration its transaction needs.
public protocol MessageHandler: Sendable {
    /// The decoded payload.
    associatedtype Message: Sendable

    /// The `kind` of the entries this handler takes.
    var kind: String { get }

    /// Decodes an entry's payload. A failure is final: the entry can never succeed, so it is
    /// dead-lettered at once with the error's text, and no attempt is retried.
    func decode(_ entry: StreamEntry) throws(UnprocessableMessage) -> Message

    /// Runs the message's transaction and says what it did. Throwing means the transaction rolled
    /// back: the entry is retried later (with backoff) or, past the retry policy's limit,
    /// dead-lettered. Use `context` to reach PostgreSQL: it retries deadlocks and serialization
    /// failures in process and waits out an outage without spending an attempt.
    func handle(_ message: Message, entry: StreamEntry, context: HandlerContext) async throws -> HandledMessage

    /// Prepares a freshly opened connection for this kind's transaction, leaving no change behind
    /// (e.g. compiles its function and plans its statements in a transaction it rolls back), so
    /// that the first messages after a start do not pay for it under load. The worker calls it on
    /// each connection it opens at startup, before its first read; a failure is logged (once per
    /// kind) and otherwise ignored. The default does nothing.
    func warmUp(on connection: PostgresConnection) async throws
}

extension MessageHandler {
    public func warmUp(on connection: PostgresConnection) async throws {}
}

/// Why an entry can never be processed (its dead-letter reason).
public struct UnprocessableMessage: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// What one committed transaction produced: what the acknowledgement publishes and the metrics count.
public struct HandledMessage: Sendable {
    /// The business outcome (`booked`, `slot_taken`, …, or `applied`, `ignored`, `rejected`).
    public var outcome: String
    /// The key was already in the inbox: nothing changed this time.
    public var duplicate: Bool
    /// An outcome for the client to fetch: published under `lh:result:<requestID>` in the same
    /// script that acknowledges the entry.
    public var published: PublishedResult?

    public init(outcome: String, duplicate: Bool, published: PublishedResult? = nil) {
        self.outcome = outcome
        self.duplicate = duplicate
        self.published = published
    }
}

/// An outcome published for a client (`GET /v1/bookings/<request_id>`).
public struct PublishedResult: Sendable {
    public var requestID: String
    /// The response body, JSON.
    public var body: [UInt8]
    /// Replace only a `pending` marker, never an outcome already published under the ID (a
    /// reused request ID must not overwrite the outcome of the request that used it first).
    public var keepExisting: Bool

    public init(requestID: String, body: [UInt8], keepExisting: Bool = false) {
        self.requestID = requestID
        self.body = body
        self.keepExisting = keepExisting
    }
}

/// What a handler may use: PostgreSQL, with the worker's rules for failures, and a logger that
/// already names the entry.
///
/// A handler runs on the worker's reactor (``WorkerService``), and so do the connections lent
/// here: a statement is sent, awaited and its result read on that one thread, with no hand-off to
/// another thread and back (see ``PostgresClient``).
public struct HandlerContext: Sendable {
    /// The worker's non-blocking pool, on its reactor.
    public let database: PostgresClient
    public let logger: Logger
    let configuration: WorkerConfiguration

    /// Runs `body` on a connection in autocommit (a single statement, e.g. a function call that
    /// is the whole transaction; its timeouts are the session's, see
    /// ``WorkerConfiguration/postgresSessionOptions``).
    public func withConnection<T>(_ what: String, _ body: (PostgresConnection) async throws -> T)
        async throws -> T
    {
        try await retryingInProcess(what) { try await database.withConnection(body) }
    }

    /// Runs `body` in a transaction with the worker's lock and statement timeouts.
    public func withTransaction<T>(_ what: String, _ body: (PostgresConnection) async throws -> T)
        async throws -> T
    {
        let options = PostgresTransactionOptions(
            lockTimeout: configuration.lockTimeout, statementTimeout: configuration.statementTimeout)
        return try await retryingInProcess(what) { try await database.withTransaction(options, body) }
    }

    /// Runs `body` once, waiting out an outage (``ridingOutOutages(_:_:)``) but not retrying
    /// any other failure. A connection lost mid-statement is an outage, and its statement may have
    /// committed all the same: `body` then runs again, so it must be idempotent, e.g. an insert
    /// under a key made before this call that the repeat finds (ON CONFLICT DO NOTHING) instead of
    /// writing a second row (``PaymentHandler`` and `webhook_log.delivery_key`).
    public func once<T>(_ what: String, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await ridingOutOutages(what) { try await database.withConnection(body) }
    }

    /// Runs `body`, again while it fails with a retryable SQLSTATE (deadlock, serialization
    /// failure, lock timeout) up to ``WorkerConfiguration/transactionAttempts`` times with a short
    /// backoff; connection failures are waited out by ``ridingOutOutages(_:_:)`` instead.
    private func retryingInProcess<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await ridingOutOutages(what, body)
            } catch let error as PostgresTransactionError
                where error.isRetryable && !EntryProcessor.isConnectionFailure(error)
                && attempt < configuration.transactionAttempts
            {
                logger.notice("retryable transaction failure", metadata: ["error": "\(error)", "try": "\(attempt)"])
            } catch let error as PostgresError
                where error.isRetryable && !EntryProcessor.isConnectionFailure(error)
                && attempt < configuration.transactionAttempts
            {
                logger.notice("retryable failure", metadata: ["error": "\(error)", "try": "\(attempt)"])
            }
            try Task.checkCancellation()
            let backoff = min(1_000, 20 * (1 << min(attempt, 6)))
            try await Task.sleep(for: .milliseconds(Int.random(in: backoff / 2...backoff)))
            attempt += 1
        }
    }

    /// Runs `body`; while it fails because PostgreSQL or Redis cannot be reached, waits (backing off
    /// from ``WorkerConfiguration/outageBackoff``'s lower bound, doubling up to its upper bound,
    /// with jitter) and runs it again, spending no attempt, for up to
    /// ``WorkerConfiguration/outageWindow`` from the first such failure. Then, or on any other
    /// error, it throws. The worker's heartbeat keeps the lease renewed meanwhile, so the
    /// supervisor leaves the entry with this worker; cancellation (a drain) ends the wait at once.
    public func ridingOutOutages<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        var outageStart: ContinuousClock.Instant?
        var pause = configuration.outageBackoff.lowerBound
        var tries = 0
        while true {
            do {
                let value = try await body()
                if let outageStart {
                    logger.notice(
                        "server reachable again; carrying on",
                        metadata: ["during": "\(what)", "waited": "\(ContinuousClock.now - outageStart)"])
                }
                return value
            } catch  where EntryProcessor.isConnectionFailure(error) && !EntryProcessor.isOurCancellation(error) {
                let start = outageStart ?? .now
                outageStart = start
                tries += 1
                guard ContinuousClock.now - start < configuration.outageWindow else {
                    logger.warning(
                        "outage longer than the outage window; counting it as a failed attempt",
                        metadata: [
                            "during": "\(what)", "error": "\(error)", "window": "\(configuration.outageWindow)",
                        ])
                    throw error
                }
                // The first failure, then every 20th (about every 100 s at the longest pause).
                if tries % 20 == 1 {
                    logger.warning(
                        "server unreachable; keeping the entry and trying again, no attempt spent",
                        metadata: ["during": "\(what)", "error": "\(error)", "tries": "\(tries)"])
                }
                try await Task.sleep(for: pause / 2 + (pause / 2) * Double.random(in: 0...1))
                pause = min(pause * 2, configuration.outageBackoff.upperBound)
            }
        }
    }
}
