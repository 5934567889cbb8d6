import Foundation
import LeaseholdLocalStack
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Testing

@testable import LeaseholdSupervisor

/// The reclaimer's claim script on a real cluster (3 masters), on the sharded layout: it runs in
/// its stream's hash slot and claims an entry whose lease is gone.
@Suite("Reclaim on a Redis Cluster", .enabled(if: LocalRedisCluster.isAvailable))
struct ReclaimerOnClusterTests {
    @Test func anEntryWhoseLeaseIsGoneIsClaimedForTheSupervisor() async throws {
        try await LocalRedisCluster.run { cluster in
            let client = RedisClient(configuration: try RedisConfiguration(url: cluster.url), size: 2)
            defer { client.close() }
            let keys = RedisKeys(prefix: "lhr:", shards: 3)
            let consumer = StreamConsumer(streams: keys.streams("bookings"), consumer: "w1")
            try await consumer.ensureGroups(via: client)
            _ = try await StreamProducer(keys: keys, highWaterMark: 0).enqueue(
                StreamEntry(
                    stream: keys.bookingStream(requestID: "r1"), key: "api:r1", kind: "booking",
                    payload: Array(#"{"action":"book","user_id":1,"slot_id":1}"#.utf8)),
                via: client)
            let terms = StreamConsumer.LeaseTerms(keys: keys, ownerPrefix: "w1:1:", ttl: .seconds(30))
            let batch = try await consumer.read(count: 10, block: .milliseconds(200), leasing: terms, via: client)
            let stalled = try #require(batch.entries.first)
            #expect(stalled.held)
            try await stalled.lease.release(via: client)

            let claim = try await Reclaimer.claim(
                id: stalled.entry.id, stream: stalled.entry.stream,
                leaseKey: keys.lease(stalled.entry.key, in: stalled.entry.stream), consumer: "supervisor",
                minIdle: .zero, via: client)
            guard case .claimed(let from, _, _) = claim else {
                Issue.record("expected a claim, got \(claim)")
                return
            }
            #expect(from == "w1")
        }
    }
}
