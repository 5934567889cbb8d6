import Foundation
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Pausing a stream against a real Redis: the workers' read claims nothing from it (and does not
/// spin on its undelivered entries), the retry schedule keeps its retries parked, and resuming
/// delivers everything in order.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable))
struct StreamPausesTests {
    static func entry(_ stream: String, _ n: Int) -> StreamEntry {
        StreamEntry(stream: stream, key: "k:\(n)", kind: "booking", payload: Array("{\"n\":\(n)}".utf8))
    }

    static func terms(_ keys: RedisKeys) -> StreamConsumer.LeaseTerms {
        .init(keys: keys, ownerPrefix: "w1:", ttl: .seconds(30))
    }

    @Test("a paused stream is not read, the others are; resume delivers its entries in order")
    func pausedStreamIsNotReadUntilResumed() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let bookings = keys.stream("bookings")
            let telegram = keys.stream("telegram")
            let consumer = StreamConsumer(streams: [telegram, bookings], consumer: "w1")
            try await consumer.ensureGroups(via: client)
            let pauses = StreamPauses(keys: keys)
            try await pauses.pause(source: "bookings", .init(by: "ann", at: Date(), reason: "INC-1"), via: client)
            let producer = StreamProducer(keys: keys, highWaterMark: 0)
            for n in 0..<5 { _ = try await producer.enqueue(Self.entry(bookings, n), via: client) }
            _ = try await producer.enqueue(Self.entry(telegram, 100), via: client)

            let first = try await consumer.read(count: 16, block: .zero, leasing: Self.terms(keys), via: client)
            #expect(first.entries.map(\.entry.key) == ["k:100"])
            #expect(first.paused == [bookings])
            // With only the paused stream's entries left, a blocking read waits out its time
            // and claims nothing (it does not end at once on the paused stream's backlog).
            let waited = try await consumer.read(
                count: 16, block: .milliseconds(200), leasing: Self.terms(keys), via: client)
            #expect(waited.isEmpty)
            let pending = try await client.send("XPENDING", bookings, RedisKeys.consumerGroup)
            #expect(pending.array?.first?.int == 0, "nothing of the paused stream was claimed")
            let record = try #require(try await pauses.paused([telegram, bookings], via: client)[bookings])
            #expect(record.by == "ann" && record.reason == "INC-1")

            #expect(try await pauses.resume(source: "bookings", via: client))
            #expect(!(try await pauses.resume(source: "bookings", via: client)), "resuming twice finds nothing")
            let resumed = try await consumer.read(count: 16, block: .zero, leasing: Self.terms(keys), via: client)
            #expect(resumed.entries.map(\.entry.key) == ["k:0", "k:1", "k:2", "k:3", "k:4"])
            #expect(resumed.entries.allSatisfy { $0.held })
            #expect(resumed.paused.isEmpty)
        }
    }

    @Test("every shard of a source is paused, and the pause key is in the stream's hash slot")
    func pauseCoversEveryShard() async throws {
        try await RedisTestKeys.withKeys { client, flat in
            let keys = RedisKeys(prefix: flat.prefix, shards: 3)
            let pauses = StreamPauses(keys: keys)
            try await pauses.pause(source: "yookassa", .init(by: "bob", at: Date(), reason: "bug"), via: client)
            let paused = try await pauses.paused(keys.streams(RedisKeys.sources), via: client)
            #expect(Set(paused.keys) == Set(keys.streams("yookassa")))
            for stream in keys.streams("yookassa") {
                #expect(keys.pause(of: stream).hasPrefix(keys.scope(of: stream)))
            }
            #expect(flat.pause(of: flat.stream("bookings")) == "\(flat.prefix)paused:stream:bookings")
        }
    }

    @Test("due retries of a paused stream stay parked and do not hold up the others")
    func retriesOfAPausedStreamStayParked() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let bookings = keys.stream("bookings")
            let telegram = keys.stream("telegram")
            let scheduler = RetryScheduler(keys: keys, streams: [bookings, telegram])
            var pending: [StreamEntry] = []
            for stream in [bookings, telegram] {
                pending += try await RetrySchedulerTests.pendingEntries(
                    (0..<3).map { Self.entry(stream, $0) }, stream: stream, keys: keys, client: client)
            }
            let now = Date()
            for entry in pending {
                // The paused stream's retries fall due first, so a scan that stopped at them
                // would never reach the others.
                let due = now.addingTimeInterval(entry.stream == bookings ? -10 : -1)
                try await scheduler.schedule(entry: entry, at: due, lastError: "e", worker: "c1", via: client)
            }
            #expect(try await scheduler.moveDue(now: now, limit: 2, skipping: [bookings], via: client) == 2)
            #expect(try await scheduler.moveDue(now: now, limit: 2, skipping: [bookings], via: client) == 1)
            #expect(try await scheduler.moveDue(now: now, limit: 2, skipping: [bookings], via: client) == 0)
            #expect(try await scheduler.backlog(via: client) == 3)
            #expect(try await scheduler.moveDue(now: now, limit: 10, via: client) == 3)
            #expect(try await scheduler.backlog(via: client) == 0)
        }
    }
}

extension UnitTests {
    /// What `leasehold streams pause` accepts as a target, without a server.
    @Suite struct StreamPauseTargetTests {
        @Test("targets: a source, a stream key, a kind or all; anything else is refused")
        func targetsNameSources() {
            let pauses = StreamPauses(keys: RedisKeys(prefix: "lh:", shards: 2))
            #expect(pauses.sources(named: "yookassa") == ["yookassa"])
            #expect(pauses.sources(named: "lh:{bookings:1}:stream") == ["bookings"])
            #expect(pauses.sources(named: "booking") == ["telegram", "bookings"])
            #expect(pauses.sources(named: "yookassa.notification") == ["yookassa"])
            #expect(pauses.sources(named: "all") == RedisKeys.sources)
            #expect(pauses.sources(named: "payments") == nil)
            #expect(pauses.sources(named: "lh:stream:bookings") == nil, "not a stream of the sharded layout")
        }
    }
}
