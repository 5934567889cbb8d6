import Foundation
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import Logging
import Metrics

/// Processes one stream entry: lease → transaction (with heartbeat) → completion.
struct EntryProcessor: Sendable {
    let configuration: WorkerConfiguration
    let postgres: PostgresClient
    let redis: RedisClient
    let logger: Logger
    let transaction: BookingTransaction
    let payments: PaymentTransaction
    let completion: Completion
    let scheduler: RetryScheduler
    let deadLetters: DeadLetterStore

    init(configuration: WorkerConfiguration, postgres: PostgresClient, redis: RedisClient, logger: Logger) {
        self.configuration = configuration
        self.postgres = postgres
        self.redis = redis
        self.logger = logger
        self.transaction = BookingTransaction(rules: configuration.rules)
        self.payments = PaymentTransaction()
        self.completion = Completion(keys: configuration.keys)
        self.scheduler = RetryScheduler(keys: configuration.keys)
        self.deadLetters = DeadLetterStore(keys: configuration.keys)
    }

    /// The published outcome of a booking request, `GET /v1/bookings/<request_id>`'s body.
    struct PublishedOutcome: Codable {
        var requestID: String
        var status: String
        var interviewID: Int64?

        enum CodingKeys: String, CodingKey {
            case requestID = "request_id"
            case status
            case interviewID = "interview_id"
        }
    }

    func process(_ entry: StreamEntry) async {
        var logger = self.logger
        logger[metadataKey: "key"] = "\(entry.key)"
        logger[metadataKey: "entry"] = "\(entry.id)"
        logger[metadataKey: "attempt"] = "\(entry.attempt)"

        let lease = Lease(
            key: configuration.keys.lease(entry.key),
            owner: "\(configuration.consumerName):\(UUID().uuidString.prefix(8))", ttl: configuration.leaseTTL)
        do {
            guard try await acquire(lease, logger: logger) else {
                logger.notice("lease held by another worker; leaving the entry pending")
                return
            }
        } catch {
            logger.error("could not take the lease; leaving the entry pending", metadata: ["error": "\(error)"])
            return
        }

        let item: WorkItem
        switch WorkItem.decode(entry) {
        case .success(let decoded):
            item = decoded
        case .failure(let reason):
            // Can never succeed: dead-letter at once, no retries.
            do {
                try await deadLetters.deadLetter(
                    entry, reason: reason.description, worker: configuration.consumerName, postgres: postgres,
                    redis: redis)
                logger.error("dead-lettered", metadata: ["reason": "\(reason)"])
            } catch {
                logger.error("could not dead-letter; entry left pending", metadata: ["error": "\(error)"])
            }
            await release(lease, logger: logger)
            return
        }

        // A provider notification goes on record (webhook_log RECEIVED) before its transaction,
        // so it is logged even if the transaction fails or this process dies.
        var logID: Int64?
        if case .payment(let notification) = item {
            do {
                logID = try await withHeartbeat(lease, entry: entry, logger: logger) { [postgres, logger] in
                    try await ridingOutOutages("recording the notification", logger: logger) {
                        try await postgres.withConnection { connection in
                            try WebhookLog.received(
                                notification, key: entry.key, payload: entry.payload, attempt: entry.attempt,
                                stream: entry.stream, entryID: entry.id, on: connection)
                        }
                    }
                }
            } catch {
                if Self.isOurCancellation(error) {
                    logger.notice("cancelled during shutdown; entry left pending")
                } else {
                    await fail(entry, error: error, logger: logger)
                }
                await release(lease, logger: logger)
                return
            }
        }

        let processed: ProcessedEntry
        do {
            processed = try await withHeartbeat(lease, entry: entry, logger: logger) { [logger, logID] in
                try await ridingOutOutages("the transaction", logger: logger) {
                    try await runTransaction(item, entry: entry, logID: logID, logger: logger)
                }
            }
        } catch  where Self.isOurCancellation(error) {
            logger.notice("cancelled during shutdown; rolled back, entry left pending")
            await markFailed(
                logID, "interrupted by shutdown; the entry stays pending and is redelivered", logger: logger)
            await release(lease, logger: logger)
            return
        } catch {
            await markFailed(logID, "\(error)", logger: logger)
            await fail(entry, error: error, logger: logger)
            await release(lease, logger: logger)
            return
        }

        // COMMIT happened: acknowledge, publish, release — atomically.
        do {
            try await ridingOutOutages("acknowledging", logger: logger) { [redis, completion, configuration] in
                try await redis.withConnection { connection in
                    try completion.complete(
                        entry, lease: lease, requestID: processed.requestID, result: processed.published,
                        resultTTL: configuration.resultTTL,
                        keepExisting: processed.outcome == BookingOutcome.requestIDReused.rawValue, on: connection)
                }
            }
            Counter(
                label: "leasehold_worker_processed_total",
                dimensions: [
                    ("kind", entry.kind), ("outcome", processed.outcome), ("duplicate", String(processed.duplicate)),
                ]
            ).increment()
            logger.debug(
                "processed", metadata: ["outcome": "\(processed.outcome)", "duplicate": "\(processed.duplicate)"])
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
    /// crashed, or not accepting connections yet), a connection libpq lost or could not open, a
    /// Redis connection that failed or timed out.
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
            || ["57P01", "57P02", "57P03"].contains(error.sqlState)
    }

    /// Runs `body`; while it fails because PostgreSQL or Redis cannot be reached, waits (backing off
    /// from ``WorkerConfiguration/outageBackoff``'s lower bound, doubling up to its upper bound,
    /// with jitter) and runs it again, spending no attempt, for up to
    /// ``WorkerConfiguration/outageWindow`` from the first such failure. Then, or on any other
    /// error, it throws. The caller keeps the lease renewed meanwhile (``withHeartbeat``), so the
    /// supervisor leaves the entry with this worker; cancellation (a drain) ends the wait at once.
    private func ridingOutOutages<T: Sendable>(
        _ what: String, logger: Logger, _ body: @Sendable () async throws -> T
    ) async throws -> T {
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
            } catch  where Self.isConnectionFailure(error) && !Self.isOurCancellation(error) {
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

    /// Marks a webhook_log row FAILED after its transaction rolled back (best effort, in a task
    /// of its own so a cancelled caller still records it).
    private func markFailed(_ logID: Int64?, _ error: String, logger: Logger) async {
        guard let logID else { return }
        let postgres = self.postgres
        do {
            _ = try await Task {
                try await postgres.withConnection { try WebhookLog.failed(logID, error: error, on: $0) }
            }.value
        } catch {
            logger.warning("could not mark the webhook_log row FAILED", metadata: ["error": "\(error)"])
        }
    }

    /// The transaction failed: schedule the next attempt (acknowledging this one atomically) or,
    /// past the policy's limit, dead-letter the entry. If even that fails, the entry stays pending
    /// and the supervisor reclaims it after the visibility timeout.
    private func fail(_ entry: StreamEntry, error: any Error, logger: Logger) async {
        let message = "\(error)"
        switch configuration.retryPolicy.decide(attempt: entry.attempt, now: Date(), kind: entry.kind) {
        case .retry(let at, let delay):
            do {
                _ = try await redis.withConnection { [scheduler] connection in
                    try scheduler.schedule(
                        entry: entry, at: at, lastError: message, worker: configuration.consumerName, on: connection)
                }
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
                    entry, reason: "\(message); \(limit)", worker: configuration.consumerName, postgres: postgres,
                    redis: redis)
                Counter(label: "leasehold_worker_dead_letters_total").increment()
                logger.error("transaction failed for the last time; dead-lettered", metadata: ["error": "\(message)"])
            } catch {
                logger.error("could not dead-letter; entry left pending", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Takes the lease, waiting up to `leaseWait` while another worker holds it.
    private func acquire(_ lease: Lease, logger: Logger) async throws -> Bool {
        let deadline = ContinuousClock.now + configuration.leaseWait
        while true {
            let acquired = try await ridingOutOutages("taking the lease", logger: logger) { [redis] in
                try await redis.withConnection { try lease.acquire(on: $0) }
            }
            if acquired { return true }
            if ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Releases the lease even when the calling task is cancelled (a SIGTERM drain that timed
    /// out): the release runs in a task of its own, which does not inherit the cancellation, and
    /// is awaited at once.
    private func release(_ lease: Lease, logger: Logger) async {
        let redis = self.redis
        do {
            _ = try await Task { try await redis.withConnection { try lease.release(on: $0) } }.value
        } catch {
            logger.warning("could not release the lease; it expires by itself", metadata: ["error": "\(error)"])
        }
    }

    /// Runs `body` while a child task renews `lease` every heartbeat interval.
    private func withHeartbeat<T: Sendable>(
        _ lease: Lease, entry: StreamEntry, logger: Logger, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: configuration.heartbeat)
                    if Task.isCancelled { break }
                    do {
                        if try await redis.withConnection({
                            try lease.renew(resetting: entry, consumer: configuration.consumerName, on: $0)
                        }) == false {
                            // Guarantee 4 (Runbooks/architecture.md): losing the lease is safe (the inbox decides), but worth knowing.
                            logger.warning("lease lost while the transaction runs; the inbox keeps it exactly-once")
                        }
                    } catch {
                        logger.warning("lease heartbeat failed", metadata: ["error": "\(error)"])
                    }
                }
                return nil
            }
            group.addTask { try await body() }
            defer { group.cancelAll() }
            while let value = try await group.next() {
                if let value { return value }
            }
            throw CancellationError()
        }
    }

    /// One transaction, retried in process while it fails with a retryable error (connection
    /// failures excepted: ``ridingOutOutages(_:logger:_:)`` waits those out).
    private func runTransaction(_ item: WorkItem, entry: StreamEntry, logID: Int64?, logger: Logger) async throws
        -> ProcessedEntry
    {
        let options = PostgresTransactionOptions(
            lockTimeout: configuration.lockTimeout, statementTimeout: configuration.statementTimeout)
        var attempt = 1
        while true {
            do {
                switch item {
                case .booking(let request):
                    // One statement in autocommit: `leasehold_book` is the whole transaction, one
                    // round trip; its timeouts are the session's (postgresSessionOptions).
                    let result = try await postgres.withConnection { [transaction] connection in
                        try transaction.run(
                            request, key: entry.key, stream: entry.stream, entryID: entry.id, on: connection)
                    }
                    return ProcessedEntry(
                        outcome: result.outcome.rawValue, duplicate: result.duplicate,
                        requestID: request.requestID,
                        published: request.requestID.flatMap { requestID in
                            try? JSONEncoder().encode(
                                PublishedOutcome(
                                    requestID: requestID, status: result.outcome.rawValue,
                                    interviewID: result.interviewID))
                        }.map(Array.init))
                case .payment(let notification):
                    return try await postgres.withTransaction(options) { [payments] connection in
                        let result = try payments.run(
                            notification, key: entry.key, logID: logID, stream: entry.stream, entryID: entry.id,
                            on: connection)
                        return ProcessedEntry(outcome: result.outcome.rawValue, duplicate: result.duplicate)
                    }
                }
            } catch let error as PostgresTransactionError
                where error.isRetryable && !Self.isConnectionFailure(error)
                && attempt < configuration.transactionAttempts
            {
                logger.notice("retryable transaction failure", metadata: ["error": "\(error)", "try": "\(attempt)"])
            } catch let error as PostgresError
                where error.isRetryable && !Self.isConnectionFailure(error)
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
}
