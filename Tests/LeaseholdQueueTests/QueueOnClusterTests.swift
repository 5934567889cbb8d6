import Foundation
import LeaseholdCore
import LeaseholdLocalStack
import LeaseholdQueue
import LeaseholdReactor
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// The queue's operations through a ``RedisClient`` given every node of a real cluster (3 masters),
/// on the sharded layout: each script stays in one hash slot, the batch ones split per slot, and
/// every key lands on the master serving its stream.
@Suite("Queue operations on a Redis Cluster", .enabled(if: LocalRedisCluster.isAvailable))
struct QueueOnClusterTests {
    static let payload = Array(#"{"action":"book","user_id":1,"slot_id":1}"#.utf8)

    @Test func aMessageGoesThroughEveryStepOnItsShardsMaster() async throws {
        try await LocalRedisCluster.run { cluster in
            let client = RedisClient(configuration: try RedisConfiguration(url: cluster.url), size: 2)
            defer { client.close() }
            #expect(client.isCluster)
            let keys = RedisKeys(prefix: "lhq:", shards: 3)
            let streams = keys.streams("bookings")
            let consumer = StreamConsumer(streams: streams, consumer: "w1")
            try await consumer.ensureGroups(via: client)

            // Ingress: 30 API bookings, each with its pending marker and digest, on its shard.
            let producer = StreamProducer(keys: keys, highWaterMark: 1_000)
            for index in 0..<30 {
                let requestID = "r\(index)"
                _ = try await producer.enqueue(
                    StreamEntry(
                        stream: keys.bookingStream(requestID: requestID), key: "api:\(requestID)", kind: "booking",
                        payload: Self.payload),
                    marker: .init(
                        key: keys.result(requestID), value: "pending", ttl: .seconds(60),
                        digestKey: keys.requestDigest(requestID), digest: "digest-\(index)"),
                    via: client)
            }
            // A reused ID is refused by the script on the ID's shard, before anything is written.
            await #expect(throws: RedisError.self) {
                try await producer.enqueue(
                    StreamEntry(
                        stream: keys.bookingStream(requestID: "r0"), key: "api:r0", kind: "booking",
                        payload: Self.payload),
                    marker: .init(
                        key: keys.result("r0"), value: "pending", ttl: .seconds(60),
                        digestKey: keys.requestDigest("r0"), digest: "another"),
                    via: client)
            }
            var lengths: [Int64] = []
            for stream in streams { lengths.append(try await client.send("XLEN", stream).int ?? 0) }
            #expect(lengths.reduce(0, +) == 30 && lengths.allSatisfy { $0 > 0 }, "spread over the shards: \(lengths)")

            // Worker: one read takes every entry with its lease (a script per stream), then one
            // heartbeat renews them all (a script per slot).
            let terms = StreamConsumer.LeaseTerms(keys: keys, ownerPrefix: "w1:1:", ttl: .seconds(30))
            let batch = try await consumer.read(count: 100, block: .milliseconds(200), leasing: terms, via: client)
            #expect(batch.entries.count == 30 && batch.entries.allSatisfy(\.held))
            let renewed = try await Lease.renew(batch.entries.map { ($0.lease, $0.entry) }, consumer: "w1", via: client)
            #expect(renewed == Array(repeating: true, count: 30))
            // A lease sits on the master of its stream's slot (and nowhere else).
            let map = try await cluster.map()
            for leased in batch.entries.prefix(5) {
                let master = try #require(map.master(forSlot: RedisClusterSlot.slot(for: leased.entry.stream)))
                #expect(try await cluster.send(to: master, "EXISTS", leased.lease.key).int == 1)
            }

            // 20 complete (acknowledged, outcome published, lease released); 10 fail and are parked.
            let completion = Completion(keys: keys)
            for leased in batch.entries.prefix(20) {
                let requestID = String(leased.entry.key.dropFirst("api:".count))
                try await completion.complete(
                    leased.entry, lease: leased.lease, requestID: requestID,
                    result: Array(#"{"status":"booked"}"#.utf8),
                    resultTTL: .seconds(60), via: client)
                #expect(try await client.send("GET", keys.result(requestID)).string == #"{"status":"booked"}"#)
                #expect(try await client.send("EXISTS", leased.lease.key).int == 0)
            }
            let scheduler = RetryScheduler(keys: keys, streams: keys.streams(RedisKeys.sources))
            for leased in batch.entries.suffix(10) {
                let outcome = try await scheduler.schedule(
                    entry: leased.entry, at: Date().addingTimeInterval(-1), lastError: "deadlock", worker: "w1",
                    via: client)
                #expect(outcome == .scheduled)
                #expect(try await leased.lease.release(via: client), "released, as the worker does after parking")
            }
            #expect(try await scheduler.backlog(via: client) == 10)
            #expect(try await scheduler.oldestDue(via: client) != nil)
            // Supervisor: the due retries go back, each to its own stream, from its shard's schedule.
            #expect(try await scheduler.moveDue(now: Date(), limit: 100, via: client) == 10)
            #expect(try await scheduler.backlog(via: client) == 0)
            let again = try await consumer.read(count: 100, block: .milliseconds(200), leasing: terms, via: client)
            #expect(again.entries.count == 10 && again.entries.allSatisfy { $0.entry.attempt == 2 && $0.held })
            #expect(
                Set(again.entries.map(\.entry.key)) == Set(batch.entries.suffix(10).map(\.entry.key)),
                "the same messages came back")

            // The inspection the console and `leasehold status` run: the consumer is listed, and
            // no supervisor leads.
            let delivered = try #require(again.entries.first)
            #expect(
                try await ConsumerInfo.read(stream: delivered.entry.stream, via: client).map(\.name).contains("w1"))
            #expect(try await QueueStatus.currentLeader(keys: keys, via: client) == nil)
        }
    }

    @Test func anIdleReadWaitsRoundTheStreamsAndSeesANewEntryQuickly() async throws {
        try await LocalRedisCluster.run { cluster in
            let client = RedisClient(configuration: try RedisConfiguration(url: cluster.url), size: 4)
            defer { client.close() }
            let keys = RedisKeys(prefix: "lhw:", shards: 3)
            let consumer = StreamConsumer(streams: keys.streams(RedisKeys.sources), consumer: "w1")
            try await consumer.ensureGroups(via: client)
            let terms = StreamConsumer.LeaseTerms(keys: keys, ownerPrefix: "w1:1:", ttl: .seconds(30))

            // Nothing there: the read waits its whole block, going round nine streams.
            let started = ContinuousClock.now
            let empty = try await consumer.read(count: 10, block: .milliseconds(600), leasing: terms, via: client)
            #expect(empty.isEmpty)
            #expect(ContinuousClock.now - started >= .milliseconds(550))

            // An entry added to the last stream 300 ms into a 10-s wait is read well before the end.
            let last = try #require(keys.streams(RedisKeys.sources).last)
            let adding = Task {
                try await Task.sleep(for: .milliseconds(300))
                _ = try await StreamProducer(keys: keys, highWaterMark: 0).enqueue(
                    StreamEntry(stream: last, key: "api:late", kind: "booking", payload: Self.payload), via: client)
            }
            let waitStarted = ContinuousClock.now
            let late = try await consumer.read(count: 10, block: .seconds(10), leasing: terms, via: client)
            try await adding.value
            #expect(late.entries.map(\.entry.key) == ["api:late"])
            #expect(ContinuousClock.now - waitStarted < .seconds(3), "seen within about one round of waits")
        }
    }

    /// One batch of completions over three shards while one shard's master is frozen: the other
    /// shards' entries are completed at once (their calls run beside the stalled one, not after
    /// its timeout), and only the frozen shard's entries fail, with its timeout.
    @Test func aStalledShardFailsOnlyItsOwnCompletionsAndHoldsUpNoOther() async throws {
        try await LocalRedisCluster.run { cluster in
            let keys = RedisKeys(prefix: "lhc:", shards: 3)
            let streams = keys.streams("bookings")
            let setup = RedisClient(configuration: try RedisConfiguration(url: cluster.url), size: 2)
            let consumer = StreamConsumer(streams: streams, consumer: "w1")
            try await consumer.ensureGroups(via: setup)
            let producer = StreamProducer(keys: keys, highWaterMark: 1_000)
            for index in 0..<30 {
                _ = try await producer.enqueue(
                    StreamEntry(
                        stream: keys.bookingStream(requestID: "c\(index)"), key: "api:c\(index)", kind: "booking",
                        payload: Self.payload),
                    via: setup)
            }
            let terms = StreamConsumer.LeaseTerms(keys: keys, ownerPrefix: "w1:1:", ttl: .seconds(30))
            let batch = try await consumer.read(count: 100, block: .milliseconds(200), leasing: terms, via: setup)
            try #require(batch.entries.count == 30)
            let map = try await cluster.map()
            func master(_ stream: String) throws -> RedisNodeAddress {
                try #require(map.master(forSlot: RedisClusterSlot.slot(for: stream)))
            }
            let stalled = try master(streams[0])
            let onStalled = try Set(streams.filter { try master($0) == stalled })
            let healthy = streams.filter { !onStalled.contains($0) }
            try #require(!healthy.isEmpty, "every shard on one master")
            // The stalled shard's entries first: one group after another, the others would wait
            // for its timeout.
            let ordered =
                batch.entries.filter { onStalled.contains($0.entry.stream) }
                + batch.entries.filter { !onStalled.contains($0.entry.stream) }
            let completion = Completion(keys: keys)
            let items = ordered.map {
                completion.item(
                    $0.entry, lease: $0.lease, requestID: String($0.entry.key.dropFirst(4)),
                    result: Array(#"{"status":"booked"}"#.utf8), resultTTL: .seconds(60))
            }
            var configuration = cluster.configuration
            configuration.commandTimeout = .seconds(3)
            let reactor = Reactor(label: "test.cluster-completions")
            defer { reactor.shutDown() }
            let client = try RedisClusterClient(configuration: configuration, reactor: reactor)
            // Connections to every master are open before the freeze.
            try await withTaskExecutorPreference(reactor) {
                for stream in streams { _ = try await client.send(RedisCommand(["XLEN", stream]), keys: [stream]) }
            }

            cluster.freeze(stalled)
            let clock = ContinuousClock()
            let started = clock.now
            let completing = Task(executorPreference: reactor) {
                await completion.complete(items, via: client)
            }
            // The other shards' entries are acknowledged long before the stalled call's 3 s.
            var othersDoneAfter: Duration?
            while clock.now - started < .seconds(10), othersDoneAfter == nil {
                var pending: Int64 = 0
                for stream in healthy {
                    let summary = try await cluster.send(
                        to: try master(stream), "XPENDING", stream, RedisKeys.consumerGroup)
                    if case .array(let fields) = summary, let count = fields.first?.int { pending += count }
                }
                if pending == 0 { othersDoneAfter = clock.now - started }
                try await Task.sleep(for: .milliseconds(20))
            }
            let errors = await completing.value
            let returnedAfter = clock.now - started
            cluster.thaw(stalled)
            await withTaskExecutorPreference(reactor) { client.close() }
            setup.close()

            let others = try #require(othersDoneAfter, "the other shards' entries were never acknowledged")
            #expect(others < .milliseconds(1_500), "the other shards completed \(others) after the start")
            #expect(returnedAfter >= .seconds(2), "the stalled shard's call ended by its timeout (\(returnedAfter))")
            for (item, error) in zip(items, errors) {
                if onStalled.contains(item.entry.stream) {
                    #expect(error != nil, "\(item.entry.key) on the stalled shard failed")
                } else {
                    #expect(error == nil, "\(item.entry.key): \(String(describing: error))")
                }
            }
        }
    }

    @Test func floodBucketsSitInTheirStreamsSlotAndAreKeptPerShard() async throws {
        try await LocalRedisCluster.run { cluster in
            let client = RedisClient(configuration: try RedisConfiguration(url: cluster.url), size: 2)
            defer { client.close() }
            let keys = RedisKeys(prefix: "lhf:", shards: 3)
            let producer = StreamProducer(keys: keys, highWaterMark: 1_000)
            let start = ContinuousClock.now

            // A Telegram chat: its updates go to one shard (by user), so one bucket; the script
            // touching it beside the stream is not refused with CROSSSLOT.
            let chatStream = keys.stream("telegram", shardKey: "42")
            let chat = StreamProducer.FloodLimit(key: keys.floodBucket("chat:42", in: chatStream), rate: 1, burst: 3)
            var chatAccepted = 0
            for index in 0..<10 {
                do {
                    _ = try await producer.enqueue(
                        StreamEntry(stream: chatStream, key: "tg:\(index)", kind: "booking", payload: Self.payload),
                        flood: chat, via: client)
                    chatAccepted += 1
                } catch is StreamProducer.Throttled {}
            }

            // An API client: its bookings spread over the shards by request ID, a bucket on each.
            var perShard: [String: Int] = [:]
            var apiAccepted = 0
            for index in 0..<30 {
                let requestID = "r\(index)"
                let stream = keys.bookingStream(requestID: requestID)
                perShard[stream, default: 0] += 1
                let limit = StreamProducer.FloodLimit(
                    key: keys.floodBucket("client:10.0.0.1", in: stream), rate: 1, burst: 3)
                do {
                    _ = try await producer.enqueue(
                        StreamEntry(stream: stream, key: "api:\(requestID)", kind: "booking", payload: Self.payload),
                        flood: limit, via: client)
                    apiAccepted += 1
                } catch is StreamProducer.Throttled {}
            }
            let elapsed = ContinuousClock.now - start
            let refill = Int(elapsed.seconds + 0.01)
            #expect(chatAccepted >= 3 && chatAccepted <= 3 + refill, "\(chatAccepted) in \(elapsed)")
            #expect(perShard.count == 3, "the premise: the bookings reach every shard")
            #expect(apiAccepted >= perShard.values.map { min($0, 3) }.reduce(0, +), "each shard's burst")
            #expect(apiAccepted <= 3 * (3 + refill), "at most a burst and the rate per shard: \(apiAccepted)")
            for stream in keys.streams("bookings") {
                let bucket = keys.floodBucket("client:10.0.0.1", in: stream)
                #expect(RedisClusterSlot.slot(for: bucket) == RedisClusterSlot.slot(for: stream))
                #expect(try await client.send("EXISTS", bucket) == .integer(1), "a bucket on \(stream)")
            }
        }
    }
}
