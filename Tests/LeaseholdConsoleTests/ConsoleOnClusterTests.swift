import Foundation
import LeaseholdLocalStack
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// The console given every node of a real Redis Cluster (3 masters) and the sharded layout: the
/// overview reads every shard's stream from the master serving it, and a replay puts the letter
/// back on its own shard's stream.
@Suite("Console: on a Redis Cluster", .enabled(if: LocalRedisCluster.isAvailable))
struct ConsoleOnClusterTests {
    @Test func theOverviewShowsEveryShardAndAReplayGoesBackToItsShard() async throws {
        try await LocalRedisCluster.run(masters: 3) { cluster in
            let redis = RedisClient(configuration: try RedisConfiguration(url: cluster.url), size: 4)
            #expect(redis.isCluster)
            let server = try await ConsoleTestServer.start(redis: redis, shards: 3)
            let keys = server.keys
            let streams = keys.streams("bookings")
            #expect(streams.count == 3)

            // 40 bookings, each on the shard its request ID names; no worker reads them.
            let consumer = StreamConsumer(streams: streams, consumer: "w1")
            try await consumer.ensureGroups(via: redis)
            let producer = StreamProducer(keys: keys, highWaterMark: 1_000)
            var expected: [String: Int] = [:]
            for index in 0..<40 {
                let requestID = "c\(index)"
                let stream = keys.bookingStream(requestID: requestID)
                _ = try await producer.enqueue(
                    StreamEntry(
                        stream: stream, key: "api:\(requestID)", kind: "booking",
                        payload: Array(#"{"request_id":"\#(requestID)","user_id":1,"slot_id":1}"#.utf8)),
                    via: redis)
                expected[stream, default: 0] += 1
            }
            #expect(expected.count == 3, "40 request IDs spread over the 3 shards: \(expected)")
            let map = try await cluster.map()
            let masters = Set(streams.compactMap { map.master(forSlot: RedisClusterSlot.slot(for: $0)) })
            #expect(masters.count >= 2, "the shards' streams live on different masters: \(masters)")

            let cookie = try await server.login(as: "Ann")
            let overview = try await server.get("/", cookie: cookie)
            #expect(overview.status == 200)
            for stream in streams {
                let row = "<tr><td>\(stream)</td><td class=\"num\">\(expected[stream] ?? 0)</td>"
                #expect(overview.body.contains(row), "the overview shows \(stream) with its length")
            }

            // A dead letter taken from the last shard's stream is replayed onto that stream, on
            // the master serving it.
            let last = streams[2]
            let letter = try await server.insertDeadLetter(
                key: "api:dead-1", stream: last, payload: #"{"request_id":"dead-1","user_id":1,"slot_id":1}"#)
            let csrf = try ConsoleTestServer.hiddenValue("csrf", in: overview.body)
            let selected = [("scope", "selected"), ("id", "\(letter)"), ("csrf", csrf), ("confirm", "yes")]
            let replay = try await server.post("/dead-letters/replay", selected, cookie: cookie)
            #expect(replay.status == 303, "\(replay.body.prefix(500))")
            #expect(try await redis.send("XLEN", last).int == Int64(expected[last] ?? 0) + 1)
            for stream in streams where stream != last {
                #expect(try await redis.send("XLEN", stream).int == Int64(expected[stream] ?? 0))
            }
            await server.shutdown()
        }
    }
}
