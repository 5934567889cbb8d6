import Foundation
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import LeaseholdWire
import Logging
import Testing

@testable import LeaseholdWorker

/// Guarantee 2 (Runbooks/architecture.md) in the worker's own code: an entry processed again by
/// another consumer (as after the supervisor's reclaim) changes the database once.
@Suite("Redelivery to another consumer", .enabled(if: IntegrationEnvironment.isAvailable))
struct RedeliveryTests {
    @Test func aRedeliveryToAnotherConsumerIsANoOp() async throws {
        let stack = try await ProcessStack.start(ingress: 0, workers: 0)
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
                deadLetterDatabase: stack.postgres, database: stack.workerPostgres, redis: stack.workerRedis,
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
}
