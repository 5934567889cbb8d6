import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import LeaseholdWire
import Logging
import Synchronization
import Testing

@testable import LeaseholdWorker

extension UnitTests {
    /// Which failures spend an attempt: only the message's own. A cancellation we caused and a server
    /// that cannot be reached do not.
    struct FailureClassificationTests {
        static func postgres(_ sqlState: String, source: PostgresError.Source = .server) -> PostgresError {
            PostgresError(source: source, sqlState: sqlState, message: "test")
        }

        static let postgresCases: [(PostgresError, Bool)] = [
            (postgres("08006", source: .connection), true), (postgres("08001", source: .connection), true),
            (postgres("57P01", source: .connection), true), (postgres("57P02"), true), (postgres("57P03"), true),
            (postgres("08P01"), true), (postgres("40001"), false), (postgres("40P01"), false),
            (postgres("55P03"), false), (postgres("23505"), false), (postgres("57014"), false),
            (postgres("25P02", source: .client), false), (postgres(SQLState.readOnlySQLTransaction), true),
        ]

        @Test("connection-class failures", arguments: postgresCases)
        func postgresErrors(_ error: PostgresError, isConnectionFailure: Bool) {
            #expect(EntryProcessor.isConnectionFailure(error) == isConnectionFailure, "\(error)")
            #expect(
                EntryProcessor.isConnectionFailure(PostgresTransactionError(bodyError: error)) == isConnectionFailure,
                "\(error) in a transaction")
        }

        @Test func redisAndOtherErrors() {
            #expect(EntryProcessor.isConnectionFailure(RedisError(source: .connection, code: .err, message: "reset")))
            #expect(!EntryProcessor.isConnectionFailure(RedisError(source: .server, code: .err, message: "wrong")))
            #expect(!EntryProcessor.isConnectionFailure(UnprocessableMessage("undecodable")))
            #expect(
                !EntryProcessor.isConnectionFailure(PostgresTransactionError(bodyError: UnprocessableMessage("domain")))
            )
        }

        @Test func a57014IsOurCancellationOnlyInACancelledTask() async {
            let canceled = Self.postgres(SQLState.queryCanceled)
            #expect(!EntryProcessor.isOurCancellation(canceled), "a statement_timeout is a failure")
            let task = Task {
                while !Task.isCancelled { await Task.yield() }
                return EntryProcessor.isOurCancellation(PostgresTransactionError(bodyError: canceled))
            }
            task.cancel()
            #expect(await task.value)
            #expect(EntryProcessor.isOurCancellation(CancellationError()))
        }
    }
}

@Suite("Cancelled entries", .enabled(if: IntegrationEnvironment.isAvailable))
struct CancelledEntryTests {
    @Test func aCancelledTransactionSpendsNoAttempt() async throws {
        let stack = try await ProcessStack.start(ingress: 0, workers: 0)
        let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
        let lock = try await SlotLock(stack, slot: slot)
        let keys = RedisKeys(prefix: stack.prefix)
        let stream = stack.stream("bookings")
        let request = BookingRequest(action: .book, userID: 1, slotID: slot, requestID: "cancel-1")
        let consumer = StreamConsumer(streams: [stream], consumer: "consumer-a")
        try await consumer.ensureGroups(via: stack.redis)
        _ = try await StreamProducer(keys: keys, highWaterMark: 0).enqueue(
            StreamEntry(
                stream: stream, key: "api:cancel-1", kind: BookingRequest.kind,
                payload: Array(try JSONEncoder().encode(request))),
            via: stack.redis)
        let delivered = try await consumer.read(count: 1, block: .milliseconds(100), via: stack.redis)
        let entry = try #require(delivered.entries.first)
        let records = LogRecords()
        let processor = EntryProcessor(
            configuration: WorkerConfiguration(
                keys: keys, consumerName: "consumer-a", lockTimeout: .seconds(60)),
            deadLetterDatabase: stack.postgres, database: stack.workerPostgres, redis: stack.workerRedis,
            logger: Logger(label: "test.cancel") { _ in RecordingLogHandler(records: records) })

        let task = Task { await processor.process(entry) }
        try await waitUntil {
            try await stack.postgres.query(
                """
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = \(stack.database.name) AND wait_event_type = 'Lock'
                """
            ).single().decode(Int64.self, at: 0) == 1
        }
        task.cancel()
        await task.value
        try await lock.release()

        #expect(
            try await stack.redis.send("ZCARD", keys.retrySchedule(for: keys.stream("bookings"))).int == 0,
            "no retry scheduled")
        #expect(try await stack.pendingCount("bookings") == 1, "left pending")
        #expect(
            try await stack.redis.send("EXISTS", keys.lease("api:cancel-1", in: keys.stream("bookings"))).int == 0,
            "lease released")
        let inbox = try await stack.postgres.query("SELECT count(*) FROM inbox").single().decode(Int64.self, at: 0)
        #expect(inbox == 0, "rolled back")
        let logged = records.lines
        let cancelled = logged.contains { $0.level == .notice && $0.message.contains("cancelled during shutdown") }
        #expect(cancelled, "\(logged)")
        #expect(!logged.contains { $0.level >= .warning }, "a cancellation is no failure: \(logged)")
        await stack.shutdown()
    }
}

/// Every message logged through a ``RecordingLogHandler``.
final class LogRecords: Sendable {
    private let storage = Mutex<[(level: Logger.Level, message: String)]>([])
    var lines: [(level: Logger.Level, message: String)] { storage.withLock { $0 } }
    func append(_ level: Logger.Level, _ message: String) { storage.withLock { $0.append((level, message)) } }
}

/// A log handler that keeps what it is given, for checking what a component logged.
struct RecordingLogHandler: LogHandler {
    let records: LogRecords
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        records.append(event.level, event.message.description)
    }
}
