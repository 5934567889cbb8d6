import Foundation
import LeaseholdCore
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Testing

@testable import LeaseholdSupervisor

/// Reclaiming against a real Redis: the lease check and the claim are one script, a heartbeat
/// keeps a live entry from ever looking idle, and the pending list is walked with a cursor.
@Suite("Reclaim: atomic claim, heartbeat, cursor", .enabled(if: IntegrationEnvironment.isAvailable))
struct ReclaimerTests {
    /// Enqueues one entry per key on `stream` and reads them all as consumer `c1`, so they are
    /// pending on `c1` with one delivery each.
    static func pending(
        keys messageKeys: [String], stream: String, keys: RedisKeys, client: RedisClient
    ) async throws -> [StreamEntry] {
        let consumer = StreamConsumer(streams: [stream], consumer: "c1")
        let producer = StreamProducer(keys: keys, highWaterMark: 0)
        try await consumer.ensureGroups(via: client)
        for key in messageKeys {
            _ = try await producer.enqueue(
                StreamEntry(stream: stream, key: key, kind: "booking", payload: Array("{}".utf8)), via: client)
        }
        return try await consumer.read(count: messageKeys.count, block: .milliseconds(100), via: client).entries
    }

    /// `(consumer, idle ms, deliveries)` of one pending entry, `nil` when it is not pending.
    static func state(of id: String, stream: String, client: RedisClient) async throws -> (String, Int64, Int64)? {
        let reply = try await client.send("XPENDING", stream, "workers", id, id, 1)
        guard let fields = reply.array?.first?.array, fields.count == 4 else { return nil }
        return (fields[1].string ?? "", fields[2].int ?? -1, fields[3].int ?? -1)
    }

    @Test func theClaimScriptLeavesALeasedEntryClaimsAFreeOneAndSkipsOneTouchedMeanwhile() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let stream = keys.stream("bookings")
            let entries = try await Self.pending(keys: ["k1", "k2", "k3"], stream: stream, keys: keys, client: client)
            try #require(entries.count == 3)
            // Idle times are set, not slept for, so no stall of a loaded machine can blur them:
            // k1 and k2 idle for ten minutes (XCLAIM to their own consumer with IDLE, JUSTID so no
            // delivery is counted), k3 touched by its worker's heartbeat just now (idle 0).
            for entry in entries.prefix(2) {
                _ = try await client.send("XCLAIM", stream, "workers", "c1", 0, entry.id, "IDLE", 600_000, "JUSTID")
            }
            _ = try await client.send("XCLAIM", stream, "workers", "c1", 0, entries[2].id, "JUSTID")
            // A worker holds k1's lease: taken "between the check and the claim" is the same thing
            // for a script, which runs with nothing in between.
            _ = try await client.send("SET", keys.lease("k1", in: keys.stream("bookings")), "c1:token", "PX", 60_000)

            // One minute: far above k3's idle time, far below k1's and k2's.
            var claims: [Reclaimer.Claim] = []
            for entry in entries {
                claims.append(
                    try await Reclaimer.claim(
                        id: entry.id, stream: stream, leaseKey: keys.lease(entry.key, in: stream),
                        consumer: "supervisor", minIdle: .seconds(60), via: client))
            }
            #expect(claims[0] == .leased)
            guard case .claimed(let consumer, let idle, let deliveries) = claims[1] else {
                Issue.record("k2 has no lease and is idle: claimed, got \(claims[1])")
                return
            }
            #expect(consumer == "c1" && idle >= 600_000 && deliveries == 1, "\(consumer) \(idle) \(deliveries)")
            #expect(claims[2] == .notIdle)

            let leased = try #require(try await Self.state(of: entries[0].id, stream: stream, client: client))
            #expect(leased.0 == "c1" && leased.2 == 1, "a leased entry stays with its worker, uncounted: \(leased)")
            let claimed = try #require(try await Self.state(of: entries[1].id, stream: stream, client: client))
            #expect(claimed.0 == "supervisor" && claimed.2 == 1, "\(claimed)")
            let touched = try #require(try await Self.state(of: entries[2].id, stream: stream, client: client))
            #expect(touched.0 == "c1", "\(touched)")

            // Claiming again finds it owned and recently claimed (the claim reset its idle time
            // from ten minutes to zero): nothing happens.
            let again = try await Reclaimer.claim(
                id: entries[1].id, stream: stream, leaseKey: keys.lease("k2", in: stream), consumer: "other",
                minIdle: .seconds(60), via: client)
            #expect(again == .notIdle)
        }
    }

    @Test func aHeartbeatResetsItsEntrysIdleTimeWithoutCountingADelivery() async throws {
        try await RedisTestKeys.withKeys { client, keys in
            let stream = keys.stream("bookings")
            let entries = try await Self.pending(keys: ["k1", "k2"], stream: stream, keys: keys, client: client)
            try #require(entries.count == 2)
            // A TTL far above the test's own pauses, so a loaded machine cannot let it expire.
            let lease = Lease(key: keys.lease("k1", in: keys.stream("bookings")), owner: "c1:abc", ttl: .seconds(60))
            #expect(try await lease.acquire(via: client))
            try await Task.sleep(for: .milliseconds(600))

            // Bounds that follow the clock, whatever the machine's load: after the renewal the idle
            // time is at most the time since just before it, and the TTL at least 5 s minus that;
            // without it both would be off by the 600 ms slept above.
            let beforeRenew = ContinuousClock.now
            let renewed = try await lease.renew(resetting: entries[0], consumer: "c1", via: client)
            #expect(renewed)
            let after = try #require(try await Self.state(of: entries[0].id, stream: stream, client: client))
            let ttl = try await client.send("PTTL", lease.key).int ?? 0
            let elapsedMs = (ContinuousClock.now - beforeRenew).milliseconds + 1
            #expect(after.0 == "c1" && after.1 <= elapsedMs && after.2 == 1, "idle reset, one delivery: \(after)")
            #expect(ttl >= 60_000 - elapsedMs, "the lease was extended: \(ttl) ms left after \(elapsedMs) ms")

            // A lease this owner does not hold renews nothing and touches nothing.
            let stranger = Lease(key: keys.lease("k2", in: keys.stream("bookings")), owner: "c1:def", ttl: .seconds(60))
            let lost = try await stranger.renew(resetting: entries[1], consumer: "c1", via: client)
            #expect(!lost)
            let untouched = try #require(try await Self.state(of: entries[1].id, stream: stream, client: client))
            #expect(untouched.1 >= 600, "\(untouched)")

            // An entry the supervisor claimed meanwhile is not taken back by the heartbeat.
            _ = try await client.send("XCLAIM", stream, "workers", "supervisor", 0, entries[0].id, "JUSTID")
            try await Task.sleep(for: .milliseconds(150))
            #expect(try await lease.renew(resetting: entries[0], consumer: "c1", via: client))
            let kept = try #require(try await Self.state(of: entries[0].id, stream: stream, client: client))
            #expect(kept.0 == "supervisor" && kept.1 >= 150, "\(kept)")
        }
    }

    @Test func aStalledEntryBehindTwoHundredFiftyLeasedOnesIsReclaimedWithinTwoPasses() async throws {
        try await RedisTestKeys.withKeys(size: 2) { client, keys in
            let stream = keys.stream("bookings")
            let messageKeys = (0..<251).map { "long-\($0)" }
            let entries = try await Self.pending(keys: messageKeys, stream: stream, keys: keys, client: client)
            try #require(entries.count == 251)
            // The first 250 belong to live workers (their leases are held); the last one's worker died.
            for key in messageKeys.dropLast() {
                _ = try await client.send("SET", keys.lease(key, in: keys.stream("bookings")), "c1:live", "PX", 60_000)
            }
            try await Task.sleep(for: .milliseconds(100))

            let postgres = IntegrationEnvironment.postgresClient(size: 1)  // not used: every entry is retried
            let reclaimer = Reclaimer(
                configuration: SupervisorConfiguration(
                    keys: keys, sources: ["bookings"], consumerName: "supervisor", visibilityTimeout: .milliseconds(50),
                    batchSize: 200),
                redis: client, postgres: postgres, scheduler: RetryScheduler(keys: keys),
                deadLetters: DeadLetterStore(keys: keys), logger: .init(label: "test"))
            let stalled = RetryScheduler.member(for: entries[250])

            let first = try await reclaimer.reclaim(stream: stream)
            #expect(first.examined == 200 && first.leftToLiveWorkers == 200 && first.retried == 0, "\(first)")
            #expect(reclaimer.cursor(of: stream) == entries[199].id)
            let second = try await reclaimer.reclaim(stream: stream)
            #expect(second.examined == 51 && second.leftToLiveWorkers == 50 && second.retried == 1, "\(second)")
            #expect(
                try await client.send("ZSCORE", keys.retrySchedule(for: keys.stream("bookings")), stalled) != .null,
                "the stalled one is parked")
            let body = try await client.send(
                "HGET", "\(keys.retrySchedule(for: keys.stream("bookings"))):\(stalled)", "errors")
            let history = AttemptFailure.decode(body.bytes ?? [])
            #expect(history.count == 1 && history.first?.worker == "c1", "\(history)")
            #expect(history.first?.error.contains("worker c1 stopped responding") == true, "\(history)")
            #expect(reclaimer.cursor(of: stream) == nil, "a short read wraps to the start")
            let third = try await reclaimer.reclaim(stream: stream)
            #expect(third.examined == 200 && third.retried == 0, "\(third)")
            await postgres.close()
        }
    }
}
