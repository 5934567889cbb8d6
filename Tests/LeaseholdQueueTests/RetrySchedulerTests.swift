import Foundation
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// The retry schedule against a real Redis: scheduling acknowledges atomically and exactly once,
/// and due retries come back to their stream as the same message, one attempt further.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable))
struct RetrySchedulerTests {
    /// Bytes that break naive encodings: NUL, Cyrillic, emoji, and bytes that are not UTF-8.
    static let binaryPayload: [UInt8] = Array("{\"text\":\"Вы записаны 🎉\"}".utf8) + [0, 0xFF, 0xFE, 0, 0x7F, 0x80]

    /// Enqueues `entries` on `stream` and reads them as consumer `c1` of the `workers` group, so
    /// they are pending, as a failed delivery's entry is.
    static func pendingEntries(
        _ entries: [StreamEntry], stream: String, keys: RedisKeys, client: RedisClient
    ) async throws -> [StreamEntry] {
        let consumer = StreamConsumer(streams: [stream], consumer: "c1")
        let producer = StreamProducer(keys: keys, highWaterMark: 0)
        try await consumer.ensureGroups(via: client)
        for entry in entries { _ = try await producer.enqueue(entry, via: client) }
        let batch = try await consumer.read(count: entries.count + 1, block: .milliseconds(100), via: client)
        guard batch.undecodable.isEmpty else { throw TestSetupError("undecodable: \(batch.undecodable)") }
        return batch.entries
    }

    /// New entries of the stream for consumer `c2` (the re-enqueued retries).
    static func readNew(stream: String, client: RedisClient) async throws -> [StreamEntry] {
        let consumer = StreamConsumer(streams: [stream], consumer: "c2")
        return try await consumer.read(count: 100, block: .milliseconds(50), via: client).entries
    }

    static func pendingCount(stream: String, client: RedisClient) async throws -> Int64 {
        let reply = try await client.send("XPENDING", stream, RedisKeys.consumerGroup)
        return reply.array?.first?.int ?? -1
    }

    @Test("schedule acknowledges the pending entry and parks one retry, even when called twice")
    func scheduleAcknowledgesOnce() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let scheduler = RetryScheduler(keys: keys)
            let stream = keys.stream("bookings")
            let entries = try await Self.pendingEntries(
                [StreamEntry(stream: stream, key: "bk:1", kind: "booking", payload: Self.binaryPayload, attempt: 3)],
                stream: stream, keys: keys, client: client)
            let entry = try #require(entries.first)
            #expect(try await Self.pendingCount(stream: stream, client: client) == 1)

            let due = Date().addingTimeInterval(60)
            let first = try await scheduler.schedule(
                entry: entry, at: due, lastError: "SQLSTATE 40P01 deadlock", worker: "c1", via: client)
            #expect(first == .scheduled)
            #expect(try await Self.pendingCount(stream: stream, client: client) == 0)

            let second = try await scheduler.schedule(
                entry: entry, at: due.addingTimeInterval(30), lastError: "again", worker: "c1", via: client)
            #expect(second == .alreadyScheduled)
            #expect(try await scheduler.backlog(via: client) == 1)
            let members = try await client.send("ZRANGE", keys.retrySchedule(for: stream), 0, -1, "WITHSCORES")
            #expect(
                members
                    == .array([
                        .bulk(Array(RetryScheduler.member(for: entry).utf8)),
                        .bulk(Array(String(Int64((due.timeIntervalSince1970 * 1000).rounded(.down))).utf8)),
                    ]))

            // The body keeps what an operator needs: the next attempt and the first call's error.
            let body = scheduler.bodyKey(member: RetryScheduler.member(for: entry))
            #expect(try await client.send("HGET", body, "attempt").string == "4")
            #expect(try await client.send("HGET", body, "last_error").string == "SQLSTATE 40P01 deadlock")
            #expect(try await client.send("HGET", body, "payload").bytes == Self.binaryPayload)

            let oldest = try #require(try await scheduler.oldestDue(via: client))
            #expect(abs(oldest.timeIntervalSince(due)) < 0.002)
        }
    }

    @Test("an entry a worker acknowledged meanwhile is not scheduled")
    func completedEntryIsNotScheduled() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let scheduler = RetryScheduler(keys: keys)
            let stream = keys.stream("bookings")
            let entry = try #require(
                try await Self.pendingEntries(
                    [StreamEntry(stream: stream, key: "bk:2", kind: "booking", payload: Array("{}".utf8))],
                    stream: stream, keys: keys, client: client
                ).first)
            try await client.send("XACK", stream, RedisKeys.consumerGroup, entry.id)

            let outcome = try await scheduler.schedule(
                entry: entry, at: Date(), lastError: "late", worker: "c1", via: client)
            #expect(outcome == .notPending)
            #expect(try await scheduler.backlog(via: client) == 0)
            #expect(try await scheduler.oldestDue(via: client) == nil)
        }
    }

    @Test("moveDue moves only due retries; each comes back as the same message, attempt + 1")
    func moveDueReenqueues() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let scheduler = RetryScheduler(keys: keys)
            let stream = keys.stream("telegram")
            let originals = [
                StreamEntry(
                    stream: stream, key: "tg:1", kind: "telegram.callback", payload: Self.binaryPayload, attempt: 1,
                    enqueuedAtMilliseconds: 1_700_000_000_123),
                StreamEntry(
                    stream: stream, key: "tg:2", kind: "telegram.callback", payload: [0, 1, 2, 0], attempt: 5,
                    enqueuedAtMilliseconds: 1_700_000_000_456),
            ]
            let pending = try await Self.pendingEntries(originals, stream: stream, keys: keys, client: client)
            #expect(pending.count == 2)
            let now = Date()
            let later = now.addingTimeInterval(3_600)
            try await scheduler.schedule(
                entry: pending[0], at: now.addingTimeInterval(-1), lastError: "e1", worker: "c1", via: client)
            try await scheduler.schedule(entry: pending[1], at: later, lastError: "e2", worker: "c1", via: client)

            #expect(try await scheduler.moveDue(now: now, limit: 10, via: client) == 1)
            #expect(try await scheduler.backlog(via: client) == 1)
            let oldest = try #require(try await scheduler.oldestDue(via: client))
            #expect(abs(oldest.timeIntervalSince(later)) < 0.002)
            // Its body is gone with it; the other's stays.
            #expect(
                try await client.send("EXISTS", scheduler.bodyKey(member: RetryScheduler.member(for: pending[0])))
                    == .integer(0))
            #expect(
                try await client.send("EXISTS", scheduler.bodyKey(member: RetryScheduler.member(for: pending[1])))
                    == .integer(1))

            let moved = try await Self.readNew(stream: stream, client: client)
            #expect(moved.count == 1)
            let retry = try #require(moved.first)
            #expect(retry.id != pending[0].id)
            #expect(retry.key == "tg:1")
            #expect(retry.kind == "telegram.callback")
            #expect(retry.payload == Self.binaryPayload)
            #expect(retry.attempt == 2)
            #expect(retry.enqueuedAtMilliseconds == 1_700_000_000_123)

            // Nothing else is due now; the other one is due in an hour.
            #expect(try await scheduler.moveDue(now: now, limit: 10, via: client) == 0)
            #expect(
                try await scheduler.moveDue(now: later.addingTimeInterval(1), limit: 10, via: client) == 1)
            let second = try #require(try await Self.readNew(stream: stream, client: client).first)
            #expect(second.key == "tg:2")
            #expect(second.payload == [0, 1, 2, 0])
            #expect(second.attempt == 6)
            #expect(second.enqueuedAtMilliseconds == 1_700_000_000_456)
            #expect(try await scheduler.backlog(via: client) == 0)
        }
    }

    @Test("moveDue takes at most `limit` per call, earliest first, and loses none", arguments: [1, 2, 3])
    func moveDueHonoursLimit(limit: Int) async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let scheduler = RetryScheduler(keys: keys)
            let stream = keys.stream("bookings")
            let originals = (0..<5).map {
                StreamEntry(stream: stream, key: "bk:\($0)", kind: "booking", payload: Array("{\"n\":\($0)}".utf8))
            }
            let pending = try await Self.pendingEntries(originals, stream: stream, keys: keys, client: client)
            let base = Date().addingTimeInterval(-10)
            // Scheduled in reverse, so due order differs from stream order.
            for (index, entry) in pending.enumerated() {
                try await scheduler.schedule(
                    entry: entry, at: base.addingTimeInterval(Double(pending.count - index)), lastError: "x",
                    worker: "c1", via: client)
            }
            var order: [String] = []
            while true {
                let moved = try await scheduler.moveDue(now: Date(), limit: limit, via: client)
                #expect(moved <= limit)
                let entries = try await Self.readNew(stream: stream, client: client)
                #expect(entries.count == moved)
                order += entries.map(\.key)
                if moved == 0 { break }
            }
            #expect(order == ["bk:4", "bk:3", "bk:2", "bk:1", "bk:0"])
            #expect(try await scheduler.backlog(via: client) == 0)
        }
    }

    @Test("every failed attempt's record travels with the retry and grows by one per failure")
    func failuresTravelWithTheRetry() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let scheduler = RetryScheduler(keys: keys)
            let stream = keys.stream("bookings")
            var entry = try #require(
                try await Self.pendingEntries(
                    [StreamEntry(stream: stream, key: "bk:h", kind: "booking", payload: Self.binaryPayload)],
                    stream: stream, keys: keys, client: client
                ).first)
            #expect(entry.failures.isEmpty, "a first attempt carries no history")
            let consumer = StreamConsumer(streams: [stream], consumer: "c2")
            for attempt in 1...3 {
                let failedAt = Date(timeIntervalSince1970: 1_700_000_000 + Double(attempt))
                _ = try await scheduler.schedule(
                    entry: entry, at: Date().addingTimeInterval(-1), lastError: "failure \(attempt)",
                    worker: "worker-\(attempt)", failedAt: failedAt, via: client)
                let body = scheduler.bodyKey(member: RetryScheduler.member(for: entry))
                #expect(try await client.send("HGET", body, "last_error").string == "failure \(attempt)")
                #expect(try await scheduler.moveDue(now: Date(), limit: 10, via: client) == 1)
                entry = try #require(
                    try await consumer.read(count: 1, block: .milliseconds(50), via: client).entries.first)
                #expect(entry.attempt == attempt + 1)
                #expect(entry.payload == Self.binaryPayload)
                #expect(
                    entry.failures
                        == (1...attempt).map {
                            AttemptFailure(
                                at: Date(timeIntervalSince1970: 1_700_000_000 + Double($0)), attempt: $0,
                                worker: "worker-\($0)", error: "failure \($0)")
                        })
            }
        }
    }
}
