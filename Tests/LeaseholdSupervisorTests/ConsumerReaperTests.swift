import Foundation
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Testing

@testable import LeaseholdSupervisor

/// Removing consumers left behind by restarts, against a real Redis: only a consumer that is idle
/// past the threshold **and** owns no pending entry goes (deleting one with pending entries would
/// drop them from the group for good).
@Suite("Consumer reaping", .enabled(if: IntegrationEnvironment.isAvailable))
struct ConsumerReaperTests {
    @Test func onlyTheIdleConsumerWithoutPendingEntriesIsRemoved() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let stream = keys.stream("bookings")
            let producer = StreamProducer(keys: keys, highWaterMark: 0)
            // idle-pending and busy-pending each read one entry and never acknowledge it;
            // idle-empty and busy-empty own nothing.
            try await StreamConsumer(streams: [stream], consumer: "setup").ensureGroups(via: client)
            var ids: [String] = []
            for consumer in ["idle-pending", "busy-pending"] {
                ids.append(
                    try await producer.enqueue(
                        StreamEntry(stream: stream, key: consumer, kind: "booking", payload: Array("{}".utf8)),
                        via: client))
                _ = try await StreamConsumer(streams: [stream], consumer: consumer)
                    .read(count: 1, block: .milliseconds(10), via: client)
            }
            for consumer in ["idle-empty", "busy-empty"] {
                try await client.send("XGROUP", "CREATECONSUMER", stream, "workers", consumer)
            }
            try await client.send("XGROUP", "DELCONSUMER", stream, "workers", "setup")
            try await Task.sleep(for: .milliseconds(2_000))
            // Taken before the busy ones act, so however long their calls take on a loaded machine,
            // they have been idle for less than `now - actedAt`.
            let actedAt = ContinuousClock.now
            // The busy ones act again: busy-empty reads an entry and acknowledges it (on Redis 7.0 a read
            // that returns nothing is not activity), busy-pending's heartbeat XCLAIMs its entry (JUSTID).
            _ = try await producer.enqueue(
                StreamEntry(stream: stream, key: "busy", kind: "booking", payload: Array("{}".utf8)), via: client)
            let busy = StreamConsumer(streams: [stream], consumer: "busy-empty")
            for entry in try await busy.read(count: 1, block: .milliseconds(10), via: client).entries {
                try await busy.acknowledge(entry, via: client)
            }
            _ = try await client.send("XCLAIM", stream, "workers", "busy-pending", 0, ids[1], "JUSTID")

            // The script re-checks on its own: pending entries or recent activity keep a consumer.
            let refused = (
                try await ConsumerReaper.deleteIfIdleAndEmpty(
                    "idle-pending", stream: stream, minIdle: .zero, via: client),
                try await ConsumerReaper.deleteIfIdleAndEmpty(
                    "busy-empty", stream: stream, minIdle: .seconds(60), via: client)
            )
            #expect(refused == (false, false))

            // The threshold follows the clock, whatever the machine's load: at least a second more
            // than the busy ones have been idle, at least a second less than the idle ones (idle
            // since before the 2 s sleep).
            let threshold = ContinuousClock.now - actedAt + .milliseconds(1_000)
            let reaper = ConsumerReaper(redis: client, idleTimeout: threshold, logger: .init(label: "test"))
            let removed = try await reaper.reap(stream: stream)
            #expect(removed == ["idle-empty"])
            let left = try await ConsumerInfo.read(stream: stream, via: client)
            #expect(Set(left.map(\.name)) == ["idle-pending", "busy-pending", "busy-empty"], "\(left)")
            #expect(left.first { $0.name == "idle-pending" }?.pending == 1, "its pending entry is still there")
            let summary = try await client.send("XPENDING", stream, "workers")
            #expect(summary.array?.first?.int == 2, "no pending entry was dropped")

            // Missing stream or group: nothing to do, no error.
            #expect(try await reaper.reap(stream: keys.stream("nothing")) == [])
        }
    }
}
