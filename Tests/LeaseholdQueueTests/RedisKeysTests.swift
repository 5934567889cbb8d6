import LeaseholdQueue
import LeaseholdRedis
import Testing

extension UnitTests {
    @Suite("Redis key layouts: one node, and sharded under hash tags")
    struct RedisKeysTests {
        @Test func theOneNodeLayoutIsTheLayoutEveryDeploymentAlreadyHas() {
            let keys = RedisKeys()
            let stream = keys.stream("bookings")
            #expect(stream == "lh:stream:bookings")
            #expect(keys.stream("bookings", shardKey: "anything") == stream)
            #expect(keys.streams("bookings") == [stream])
            #expect(
                keys.streams(RedisKeys.sources) == ["lh:stream:telegram", "lh:stream:yookassa", "lh:stream:bookings"])
            #expect(keys.scope(of: stream) == "lh:")
            #expect(keys.lease("api:r1", in: stream) == "lh:lease:api:r1")
            #expect(keys.result("r1") == "lh:result:r1")
            #expect(keys.requestDigest("r1") == "lh:digest:r1")
            #expect(keys.floodBucket("chat:42", in: keys.stream("telegram")) == "lh:flood:chat:42")
            #expect(keys.retrySchedule(for: stream) == "lh:retry")
            #expect(keys.retrySchedules(for: keys.streams(RedisKeys.sources)) == ["lh:retry"], "one schedule for all")
            #expect(keys.leader == "lh:leader")
            #expect(keys.samples == "lh:samples")
        }

        @Test func aShardedMessageKeepsEveryKeyInItsStreamsHashSlot() {
            let keys = RedisKeys(prefix: "app:", shards: 4)
            #expect(keys.streams("bookings") == (0..<4).map { "app:{bookings:\($0)}:stream" })
            #expect(keys.streams(["telegram", "bookings"]).count == 8)
            for index in 0..<200 {
                let requestID = "request-\(index)"
                let stream = keys.bookingStream(requestID: requestID)
                let slot = RedisClusterSlot.slot(for: stream)
                let scope = keys.scope(of: stream)
                #expect(stream == scope + "stream")
                let related = [
                    keys.lease("api:\(requestID)", in: stream), keys.result(requestID), keys.requestDigest(requestID),
                    keys.retrySchedule(for: stream), keys.retrySchedule(for: stream) + ":\(stream)/1-0",
                    keys.floodBucket("client:10.0.0.\(index % 250)", in: stream),
                ]
                for key in related {
                    #expect(key.hasPrefix(scope), "\(key) under \(scope)")
                    #expect(RedisClusterSlot.slot(for: key) == slot, "\(key) in the slot of \(stream)")
                }
            }
            #expect(keys.retrySchedules(for: keys.streams("bookings")).count == 4, "one schedule per stream")
            #expect(keys.leader == "app:leader")
        }

        @Test func shardsAreStableAndSpreadTheKeys() {
            let keys = RedisKeys(shards: 3)
            var perShard = [0, 0, 0]
            for index in 0..<3_000 {
                let shard = keys.shard(for: "user-\(index)")
                #expect(shard == keys.shard(for: "user-\(index)"), "the same key, the same shard")
                perShard[shard] += 1
            }
            // CRC16 spreads sequential keys evenly enough: no shard gets under a quarter or over
            // half of them.
            #expect(perShard.allSatisfy { (750...1_500).contains($0) }, "\(perShard)")
            // The streams of different shards hash to different slots (so a cluster can spread them).
            #expect(Set(keys.streams("bookings").map { RedisClusterSlot.slot(for: $0) }).count == 3)
            #expect(RedisKeys(shards: 1).shard(for: "anything") == 0)
        }
    }
}
