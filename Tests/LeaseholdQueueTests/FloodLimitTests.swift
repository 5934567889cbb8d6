import LeaseholdCore
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// The enqueue script's token bucket against a real Redis: a full bucket lets `burst` entries in
/// at once, then `rate` a second; a refusal writes nothing; each sender has a bucket of its own,
/// and every connection (every ingress replica) draws from the same one.
///
/// Bounds are checked against the time measured around the calls, never a deadline: at most
/// `burst + rate × elapsed` entries get in, however slow the machine.
@Suite(
    "Flood control: a token bucket per sender in the enqueue script", .enabled(if: IntegrationEnvironment.isAvailable))
struct FloodLimitTests {
    static func entry(_ stream: String, _ index: Int) -> StreamEntry {
        StreamEntry(stream: stream, key: "fl:\(index)", kind: "booking", payload: Array("{}".utf8))
    }

    /// Enqueues `count` entries one after the other under `limit`, spreading them over `clients`
    /// in turn: the number accepted, the refusals and the seconds the calls took (measured around them).
    static func send(
        _ count: Int, to stream: String, limit: StreamProducer.FloodLimit, producer: StreamProducer,
        clients: [RedisClient]
    ) async throws -> (accepted: Int, refusals: [StreamProducer.Throttled], seconds: Double) {
        let clock = ContinuousClock()
        let start = clock.now
        var accepted = 0
        var refusals: [StreamProducer.Throttled] = []
        for index in 0..<count {
            do {
                _ = try await producer.enqueue(
                    entry(stream, index), flood: limit, via: clients[index % clients.count])
                accepted += 1
            } catch let throttled as StreamProducer.Throttled {
                refusals.append(throttled)
            }
        }
        let elapsed = clock.now - start
        return (accepted, refusals, elapsed.seconds)
    }

    @Test("a full bucket lets the burst in, then the rate; a refusal says how long until the next token")
    func burstThenRate() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let stream = keys.stream("telegram")
            let producer = StreamProducer(keys: keys, highWaterMark: 0)
            let limit = StreamProducer.FloodLimit(key: keys.floodBucket("chat:1", in: stream), rate: 1, burst: 5)
            let sent = try await Self.send(20, to: stream, limit: limit, producer: producer, clients: [client])
            #expect(sent.accepted >= 5, "the burst is always let in")
            #expect(sent.accepted <= 5 + Int(sent.seconds * 1 + 0.01), "\(sent.accepted) in \(sent.seconds) s")
            if sent.seconds < 15 { #expect(!sent.refusals.isEmpty, "20 in under 15 s at 1/s after a burst of 5") }
            for refusal in sent.refusals {
                #expect(refusal.retryAfter > .zero && refusal.retryAfter <= .seconds(1), "\(refusal)")
                #expect(refusal.retryAfterSeconds == 1)
            }
            #expect(
                try await client.send("XLEN", stream).int == Int64(sent.accepted), "only the accepted are on the stream"
            )
        }
    }

    @Test("an emptied bucket refills: after the wait it names, the sender gets in again")
    func refill() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let stream = keys.stream("telegram")
            let producer = StreamProducer(keys: keys, highWaterMark: 0)
            let limit = StreamProducer.FloodLimit(key: keys.floodBucket("chat:2", in: stream), rate: 50, burst: 2)
            var refusal: StreamProducer.Throttled?
            for index in 0..<1_000 where refusal == nil {
                do {
                    _ = try await producer.enqueue(Self.entry(stream, index), flood: limit, via: client)
                } catch let throttled as StreamProducer.Throttled {
                    refusal = throttled
                }
            }
            let wait = try #require(refusal, "a bucket of 2 at 50/s refuses within 1,000 quick calls").retryAfter
            #expect(wait <= .milliseconds(20), "one token at 50/s is at most 20 ms away")
            try await Task.sleep(for: wait + .milliseconds(5))
            _ = try await producer.enqueue(Self.entry(stream, 1_000), flood: limit, via: client)
        }
    }

    @Test("senders are independent: an empty bucket does not hold back another sender")
    func sendersAreIndependent() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let stream = keys.stream("telegram")
            let producer = StreamProducer(keys: keys, highWaterMark: 0)
            let flooder = StreamProducer.FloodLimit(key: keys.floodBucket("chat:3", in: stream), rate: 1, burst: 3)
            let sent = try await Self.send(50, to: stream, limit: flooder, producer: producer, clients: [client])
            try #require(!sent.refusals.isEmpty || sent.seconds >= 47, "the premise: the flooder was refused")
            let other = StreamProducer.FloodLimit(key: keys.floodBucket("chat:4", in: stream), rate: 1, burst: 3)
            for index in 0..<3 {
                _ = try await producer.enqueue(Self.entry(stream, 100 + index), flood: other, via: client)
            }
        }
    }

    @Test("two connections (two ingress replicas) draw from one bucket")
    func sharedAcrossConnections() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let second = try IntegrationEnvironment.redisClient(size: 1)
            defer { second.close() }
            let stream = keys.stream("bookings")
            let producer = StreamProducer(keys: keys, highWaterMark: 0)
            let limit = StreamProducer.FloodLimit(
                key: keys.floodBucket("client:10.0.0.1", in: stream), rate: 1, burst: 10)
            let sent = try await Self.send(40, to: stream, limit: limit, producer: producer, clients: [client, second])
            // A bucket per connection would let 20 in at once.
            #expect(sent.accepted <= 10 + Int(sent.seconds * 1 + 0.01), "\(sent.accepted) in \(sent.seconds) s")
        }
    }

    @Test("a refusal writes nothing: no entry, no marker, no digest, the bucket as it was")
    func refusalWritesNothing() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let stream = keys.stream("bookings")
            let producer = StreamProducer(keys: keys, highWaterMark: 0)
            let bucket = keys.floodBucket("client:10.0.0.2", in: stream)
            let limit = StreamProducer.FloodLimit(key: bucket, rate: 1, burst: 1)
            func marker(_ id: String) -> StreamProducer.Marker {
                StreamProducer.Marker(
                    key: keys.result(id), value: "pending", ttl: .seconds(60), digestKey: keys.requestDigest(id),
                    digest: "d-\(id)")
            }
            let start = ContinuousClock.now
            _ = try await producer.enqueue(Self.entry(stream, 0), marker: marker("r0"), flood: limit, via: client)
            let before = try await client.send("HGETALL", bucket)
            var refused = 0
            for index in 1...5 {
                let id = "r\(index)"
                do {
                    _ = try await producer.enqueue(
                        Self.entry(stream, index), marker: marker(id), flood: limit, via: client)
                } catch is StreamProducer.Throttled {
                    refused += 1
                    #expect(try await client.send("GET", keys.result(id)) == .null, "no marker for \(id)")
                    #expect(try await client.send("GET", keys.requestDigest(id)) == .null, "no digest for \(id)")
                }
            }
            let elapsed = ContinuousClock.now - start
            if elapsed < .seconds(1) { #expect(refused == 5, "an emptied bucket at 1/s refuses for a second") }
            if refused == 5 {
                #expect(try await client.send("HGETALL", bucket) == before, "refusals take no token")
            }
            #expect(try await client.send("XLEN", stream).int == Int64(6 - refused))
        }
    }

    @Test("a bucket expires once it would be full again (burst / rate), plus a second")
    func bucketExpires() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let stream = keys.stream("bookings")
            let bucket = keys.floodBucket("client:10.0.0.4", in: stream)
            // 600 tokens at 1/s: full again 600 s after a token is taken, so gone after 601 s.
            let limit = StreamProducer.FloodLimit(key: bucket, rate: 1, burst: 600)
            let start = ContinuousClock.now
            _ = try await StreamProducer(keys: keys, highWaterMark: 0).enqueue(
                Self.entry(stream, 0), flood: limit, via: client)
            let ttl = try #require(try await client.send("PTTL", bucket).int)
            let elapsed = Int64((ContinuousClock.now - start).components.seconds) + 1
            #expect(ttl <= 601_000 && ttl > 601_000 - elapsed * 1_000, "\(ttl) ms")
        }
    }

    @Test("a refusal by the high-water mark takes no token")
    func overloadTakesNoToken() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let stream = keys.stream("bookings")
            let producer = StreamProducer(keys: keys, highWaterMark: 1)
            let bucket = keys.floodBucket("client:10.0.0.3", in: stream)
            let limit = StreamProducer.FloodLimit(key: bucket, rate: 1, burst: 100)
            _ = try await producer.enqueue(Self.entry(stream, 0), flood: limit, via: client)
            let before = try await client.send("HGETALL", bucket)
            await #expect(throws: RedisError.self, "at the mark") {
                try await producer.enqueue(Self.entry(stream, 1), flood: limit, via: client)
            }
            #expect(try await client.send("HGETALL", bucket) == before)
        }
    }

    @Test("without a limit, no bucket is made")
    func noLimitNoBucket() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let stream = keys.stream("bookings")
            _ = try await StreamProducer(keys: keys, highWaterMark: 0).enqueue(Self.entry(stream, 0), via: client)
            let found = try await client.send("SCAN", "0", "MATCH", keys.prefix + "flood:*", "COUNT", 1000)
            #expect(found.array?.last?.array?.isEmpty == true, "\(found)")
        }
    }
}
