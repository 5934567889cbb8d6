import Foundation
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Insert idempotently, then XACK: a crash in between loses nothing and duplicates nothing.
@Suite("Dead-letter store", .enabled(if: IntegrationEnvironment.isAvailable))
struct DeadLetterStoreTests {
    @Test func deadLetteringTheSameEntryTwiceKeepsOneRowAndAcknowledges() async throws {
        let stack = try await ProcessStack.start(ingress: 0, workers: 0)
        let keys = RedisKeys(prefix: stack.prefix)
        let stream = stack.stream("bookings")
        let consumer = StreamConsumer(streams: [stream], consumer: "dead-letter-test")
        let payload: [UInt8] = [0x7B, 0x00, 0xFF, 0x7D]  // not even UTF-8: kept byte for byte
        try await consumer.ensureGroups(via: stack.redis)
        _ = try await StreamProducer(keys: keys, highWaterMark: 0).enqueue(
            StreamEntry(stream: stream, key: "api:dl-1", kind: "booking", payload: payload), via: stack.redis)
        let read = try await consumer.read(count: 1, block: .milliseconds(100), via: stack.redis)
        let entry = try #require(read.entries.first)
        let store = DeadLetterStore(keys: keys)
        // The first call "crashed" after its insert (simulated: its XACK is undone by re-reading
        // the entry as still pending); the second call must neither duplicate nor lose it.
        let first = try await store.deadLetter(entry, reason: "first", postgres: stack.postgres, redis: stack.redis)
        let second = try await store.deadLetter(
            entry, reason: "second", postgres: stack.postgres, redis: stack.redis)
        #expect(first == second)
        let rows = try await stack.postgres.query("SELECT last_error, payload FROM dead_letters")
        #expect(rows.count == 1)
        let (lastError, stored) = try rows.single().decode(String.self, [UInt8].self)
        #expect(lastError == "first", "the first record wins; the repeat changes nothing")
        #expect(stored == payload)
        #expect(try await stack.pendingCount("bookings") == 0, "acknowledged")
        await stack.shutdown()
    }
}
