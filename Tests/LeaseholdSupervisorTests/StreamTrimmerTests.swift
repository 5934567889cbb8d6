import Foundation
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Testing

@testable import LeaseholdSupervisor

@Suite("Trimming never passes a pending or undelivered entry", .enabled(if: IntegrationEnvironment.isAvailable))
struct StreamTrimmerTests {
    @Test func trimsAcknowledgedEntriesOnly() async throws {
        let redis = try IntegrationEnvironment.redisClient(size: 2)
        let keys = RedisKeys(prefix: IntegrationEnvironment.uniqueName("lhtrim") + ":")
        let stream = keys.stream("bookings")
        let consumer = StreamConsumer(streams: [stream], consumer: "c1")
        var ids: [String] = []
        for index in 0..<10 {
            let entry = StreamEntry(stream: stream, key: "k\(index)", kind: "booking", payload: Array("{}".utf8))
            ids.append(
                try await StreamProducer(keys: keys, highWaterMark: 0).enqueue(entry, via: redis))
        }
        // Deliver the first 6; acknowledge 0, 1, 3, 5. Entries 2 and 4 stay pending; 6…9 undelivered.
        try await consumer.ensureGroups(via: redis)
        let delivered = try await consumer.read(count: 6, block: .milliseconds(100), via: redis)
        #expect(delivered.entries.count == 6)
        for index in [0, 1, 3, 5] { _ = try await redis.send("XACK", stream, "workers", ids[index]) }

        let removed = try await StreamTrimmer(redis: redis).trim(stream: stream)
        #expect(removed == 2, "only 0 and 1 lie below the oldest pending entry (2)")
        let left = try await redis.send("XRANGE", stream, "-", "+").array?.compactMap { $0.array?.first?.string } ?? []
        #expect(left == Array(ids[2...]), "every pending and undelivered entry is still there")

        // Once everything delivered is acknowledged, trimming stops at the first undelivered entry.
        for index in [2, 4] { _ = try await redis.send("XACK", stream, "workers", ids[index]) }
        _ = try await StreamTrimmer(redis: redis).trim(stream: stream)
        let after = try await redis.send("XRANGE", stream, "-", "+").array?.compactMap { $0.array?.first?.string } ?? []
        #expect(after == Array(ids[6...]))
        _ = try await redis.send("DEL", stream)
        redis.close()
    }

    @Test(arguments: [("1-0", "1-1"), ("5-18446744073709551615", "6-0")])
    func successorOfAStreamID(_ id: String, _ next: String) {
        #expect(StreamTrimmer.successor(of: id) == next)
    }
}
