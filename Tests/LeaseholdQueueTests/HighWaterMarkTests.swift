import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Testing

@Suite(
    "The high-water mark counts what workers have not finished", .enabled(if: IntegrationEnvironment.isAvailable))
struct HighWaterMarkTests {
    static func entry(_ stream: String, _ index: Int) -> StreamEntry {
        StreamEntry(stream: stream, key: "hw:\(index)", kind: "booking", payload: Array("{}".utf8))
    }

    /// A bookings stream with its group, one consumer and a producer whose mark is 5.
    static func withMarkOfFive(
        _ body: (RedisClient, String, StreamConsumer, StreamProducer) async throws -> Void
    ) async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let stream = keys.stream("bookings")
            let consumer = StreamConsumer(streams: [stream], consumer: "c1")
            try await consumer.ensureGroups(via: client)
            try await body(client, stream, consumer, StreamProducer(keys: keys, highWaterMark: 5))
        }
    }

    @Test func entriesDeletedBeforeAnyWorkerReadThemNoLongerCount() async throws {
        try await Self.withMarkOfFive { client, stream, consumer, producer in
            // A worker read and acknowledged an entry, and the supervisor trimmed it away.
            let done = try await producer.enqueue(Self.entry(stream, -1), via: client)
            let read = try await consumer.read(count: 1, block: .zero, via: client)
            #expect(read.entries.map(\.id) == [done])
            try await client.send("XACK", stream, RedisKeys.consumerGroup, done)
            try await client.send("XTRIM", stream, "MAXLEN", 0)
            var ids: [String] = []
            for index in 0..<5 { ids.append(try await producer.enqueue(Self.entry(stream, index), via: client)) }
            await #expect(throws: RedisError.self, "at the mark: refused") {
                try await producer.enqueue(Self.entry(stream, 5), via: client)
            }
            // Removed unread (as the ingress-only load test's clean-up does): Redis still counts
            // them in the group's lag (entries added minus entries read), though the stream is empty.
            try await client.send(RedisCommand(["XDEL", stream] + ids))
            let group = try #require(try await client.send("XINFO", "GROUPS", stream).array?.first?.fieldMap)
            #expect(group["lag"]?.int == 5, "the premise: the lag still counts the deleted entries")
            #expect(try await client.send("XLEN", stream).int == 0)
            // Nothing is waiting, so the mark lets new entries in.
            for index in 5..<10 { _ = try await producer.enqueue(Self.entry(stream, index), via: client) }
            await #expect(throws: RedisError.self, "five real ones waiting: at the mark again") {
                try await producer.enqueue(Self.entry(stream, 10), via: client)
            }
        }
    }

    @Test func deliveredButUnacknowledgedEntriesCountAndAcknowledgedOnesDoNot() async throws {
        try await Self.withMarkOfFive { client, stream, consumer, producer in
            var ids: [String] = []
            for index in 0..<5 { ids.append(try await producer.enqueue(Self.entry(stream, index), via: client)) }
            // A worker holds all five (read, not acknowledged): five unfinished, at the mark.
            let read = try await consumer.read(count: 5, block: .zero, via: client)
            #expect(read.entries.map(\.id) == ids)
            await #expect(throws: RedisError.self, "five pending: at the mark") {
                try await producer.enqueue(Self.entry(stream, 5), via: client)
            }
            // Four acknowledged and not yet trimmed: the stream is still five long, one unfinished.
            try await client.send(RedisCommand(["XACK", stream, RedisKeys.consumerGroup] + ids.prefix(4)))
            #expect(try await client.send("XLEN", stream).int == 5)
            for index in 5..<9 { _ = try await producer.enqueue(Self.entry(stream, index), via: client) }
            await #expect(throws: RedisError.self, "one pending and four undelivered: at the mark again") {
                try await producer.enqueue(Self.entry(stream, 9), via: client)
            }
        }
    }
}
