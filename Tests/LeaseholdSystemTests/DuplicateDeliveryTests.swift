import Foundation
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import LeaseholdWire
import Logging
import Testing

@testable import LeaseholdWorker

/// Guarantee 2 (Runbooks/architecture.md): every accepted message changes the database at most once.
extension SystemTests {
    @Suite("Duplicate deliveries")
    struct DuplicateDeliveryTests {
        @Test func theSameRequestSentTwiceChangesTheDatabaseOnce() async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 2)
            let slots = try await stack.seed(slots: 2, users: 2)
            // The API client retries (two XADDs with the key api:dup-1), to both ingress replicas.
            #expect(try await stack.book(requestID: "dup-1", userID: 1, slotID: slots[0], ingress: 0).status == 202)
            #expect(try await stack.book(requestID: "dup-1", userID: 1, slotID: slots[0], ingress: 1).status == 202)
            // Telegram redelivers the same update.
            #expect(try await stack.telegramCallback(updateID: 42, userID: 2, data: "book:\(slots[1])").status == 200)
            #expect(try await stack.telegramCallback(updateID: 42, userID: 2, data: "book:\(slots[1])").status == 200)
            #expect(try await stack.streamLength("bookings") == 2)
            #expect(try await stack.streamLength("telegram") == 2)

            #expect(try await stack.outcome(of: "dup-1") == "booked")
            try await waitUntil {
                let telegram = try await stack.redis.send("XINFO", "GROUPS", stack.stream("telegram")).array?.first?
                    .array
                let read = telegram.flatMap { Self.field("entries-read", in: $0) }
                let pendingBookings = try await stack.pendingCount("bookings")
                let pendingTelegram = try await stack.pendingCount("telegram")
                return read == 2 && pendingBookings == 0 && pendingTelegram == 0
            }
            let interviews = try await stack.postgres.query("SELECT count(*) FROM interviews").single().decode(
                Int64.self, at: 0)
            #expect(interviews == 2, "one interview per message key, not per delivery")
            let inbox = try await stack.postgres.query("SELECT count(*) FROM inbox").single().decode(Int64.self, at: 0)
            #expect(inbox == 2)
            let replies = try await stack.postgres.query("SELECT count(*) FROM outbox").single().decode(
                Int64.self, at: 0)
            #expect(replies == 2, "one bot reply per message key")
            #expect(try await stack.outcome(of: "dup-1") == "booked", "the duplicate republishes the recorded outcome")
            await stack.shutdown()
        }

        @Test func aRedeliveryToAnotherConsumerIsANoOp() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 0)
            let slots = try await stack.seed(slots: 1, users: 1)
            let keys = RedisKeys(prefix: stack.prefix)
            let stream = stack.stream("telegram")
            let request = BookingRequest(action: .book, userID: 1, slotID: slots[0], chatID: 1)
            let entry = StreamEntry(
                stream: stream, key: "tg:777", kind: BookingRequest.kind,
                payload: Array(try JSONEncoder().encode(request)))

            // Consumer A receives the entry.
            let consumerA = StreamConsumer(streams: [stream], consumer: "consumer-a")
            try await consumerA.ensureGroups(via: stack.redis)
            _ = try await StreamProducer(keys: keys, highWaterMark: 0).enqueue(entry, via: stack.redis)
            let delivered = try await consumerA.read(count: 10, block: .milliseconds(100), via: stack.redis)
            let received = try #require(delivered.entries.first)

            func processor(_ consumer: String) -> EntryProcessor {
                EntryProcessor(
                    configuration: WorkerConfiguration(keys: keys, consumerName: consumer),
                    postgres: stack.postgres, database: stack.asyncPostgres, reactorRedis: stack.asyncRedis,
                    logger: Logger(label: "test.\(consumer)"))
            }
            await processor("consumer-a").process(received)
            // The same entry is claimed by consumer B (what the supervisor's reclaim does) and processed again.
            _ = try await stack.redis.send("XCLAIM", stream, "workers", "consumer-b", 0, received.id)
            await processor("consumer-b").process(received)

            let interviews = try await stack.postgres.query("SELECT count(*) FROM interviews").single().decode(
                Int64.self, at: 0)
            #expect(interviews == 1)
            let outbox = try await stack.postgres.query("SELECT count(*) FROM outbox").single().decode(
                Int64.self, at: 0)
            #expect(outbox == 1)
            let outcome = try await stack.postgres.query("SELECT outcome FROM inbox WHERE message_key = 'tg:777'")
                .single().decode(String.self, at: 0)
            #expect(outcome == "booked")
            #expect(try await stack.pendingCount("telegram") == 0, "the redelivery is acknowledged too")
            await stack.shutdown()
        }

        static func field(_ name: String, in flat: [RedisValue]) -> Int64? {
            guard let index = flat.firstIndex(where: { $0.string == name }), index + 1 < flat.count else { return nil }
            return flat[index + 1].int
        }
    }
}

/// Polls `condition` every 50 ms until it holds, failing after `timeout`.
func waitUntil(
    timeout: Duration = .seconds(60), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("condition still false after \(timeout)", sourceLocation: sourceLocation)
            return
        }
        try await Task.sleep(for: .milliseconds(50))
    }
}
