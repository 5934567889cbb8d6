import Foundation
import LeaseholdLocalStack
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Every role as its own process on a real Redis Cluster (`REDIS_URL` listing every node), in the
/// sharded layout: streams spread over the masters.
extension SystemTests {
    @Suite("The system on a Redis Cluster", .enabled(if: LocalRedisCluster.isAvailable))
    struct ClusterSystemTests {
        @Test func fiveHundredConcurrentBookingsOfOneSlotBookItExactlyOnce() async throws {
            try await LocalRedisCluster.run(masters: 3) { cluster in
                let stack = try await ProcessStack.start(
                    ingress: 2, workers: 3, supervisors: 1, shards: 3, redisURL: cluster.url)
                #expect(stack.redis.isCluster)
                let slot = try #require(try await stack.seed(slots: 1, users: 500).first)
                let accepted = try await withThrowingTaskGroup(of: Int.self) { group in
                    for user in 1...500 {
                        group.addTask {
                            try await stack.book(
                                requestID: "cl-\(user)", userID: Int64(user), slotID: slot, ingress: user % 2
                            ).status
                        }
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
                #expect(accepted.allSatisfy { $0 == 202 })
                var counts: [String: Int] = [:]
                for user in 1...500 {
                    counts[try await stack.outcome(of: "cl-\(user)", ingress: (user + 1) % 2), default: 0] += 1
                }
                #expect(counts == ["booked": 1, "slot_taken": 499], "\(counts)")
                let inbox = try await stack.postgres.query("SELECT count(*) FROM inbox").single()
                    .decode(Int64.self, at: 0)
                #expect(inbox == 500)
                try await waitUntil { try await stack.pendingCount("bookings") == 0 }
                // The three bookings streams, on the masters their slots name, all took part (counted
                // by entries added: the supervisor trims what is acknowledged).
                let map = try await cluster.map()
                var masters = Set<RedisNodeAddress>()
                for stream in stack.keys.streams("bookings") {
                    let master = try #require(map.master(forSlot: RedisClusterSlot.slot(for: stream)))
                    masters.insert(master)
                    let info = try await cluster.send(to: master, "XINFO", "STREAM", stream)
                    #expect(info.fieldMap?["entries-added"]?.int ?? 0 > 0, "\(stream) on \(master)")
                }
                #expect(masters.count >= 2, "the shards spread over masters: \(masters)")
                let statuses = await stack.shutdown()
                #expect(statuses.values.allSatisfy { $0 == 0 }, "every process exits 0 on SIGTERM: \(statuses)")
            }
        }

        /// `leasehold status` given every node: each shard's stream read from the master serving
        /// it, with its own length, backlog and consumers, and the leader found on the cluster.
        @Test func statusShowsEveryShardOfTheCluster() async throws {
            try await LocalRedisCluster.run(masters: 3) { cluster in
                let stack = try await ProcessStack.start(
                    ingress: 1, workers: 0, supervisors: 1, shards: 3, redisURL: cluster.url)
                let slots = try await stack.seed(slots: 30, users: 30)
                var expected: [String: Int] = [:]
                for (index, slot) in slots.enumerated() {
                    let requestID = "st-\(index)"
                    #expect(
                        try await stack.book(requestID: requestID, userID: Int64(index + 1), slotID: slot).status == 202
                    )
                    expected[stack.keys.bookingStream(requestID: requestID), default: 0] += 1
                }
                #expect(expected.count == 3, "30 request IDs over the 3 shards: \(expected)")

                // Without a worker: every entry is on its shard, unread.
                let before = try await Self.status(stack)
                for stream in stack.keys.streams("bookings") {
                    let row = try #require(before.streams[stream], "status lists \(stream)")
                    #expect(row["length"] as? Int == expected[stream], "\(stream): \(row)")
                    #expect(row["undelivered"] as? Int == expected[stream], "\(stream): \(row)")
                    #expect(row["pending"] as? Int == 0)
                }
                #expect(before.leader?.isEmpty == false, "the supervisor leads on the cluster: \(before)")

                // A worker drains every shard; status then shows it as a consumer of each.
                try stack.startWorker(name: "worker-st")
                for index in 0..<slots.count { _ = try await stack.outcome(of: "st-\(index)") }
                try await waitUntil {
                    let after = try await Self.status(stack)
                    return stack.keys.streams("bookings").allSatisfy { stream in
                        let row = after.streams[stream]
                        return row?["pending"] as? Int == 0 && row?["undelivered"] as? Int == 0
                            && (row?["consumers"] as? Int ?? 0) >= 1
                    }
                }
                let statuses = await stack.shutdown()
                #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
            }
        }

        /// `leasehold status --json` run as a process with the stack's environment: its streams by
        /// name, and the leader.
        static func status(_ stack: ProcessStack) async throws -> (streams: [String: [String: Any]], leader: String?) {
            let result = try await LeaseholdExecutable.run(
                ["status", "--json"], in: stack.directory, environment: stack.environment, timeout: .seconds(60))
            #expect(result.status == 0, "\(result.output.suffix(2_000))")
            let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
            let start = try #require(lines.firstIndex(of: "{"), "no JSON in \(result.output.suffix(2_000))")
            let end = try #require(
                lines[start...].firstIndex(of: "}"), "unfinished JSON in \(result.output.suffix(2_000))")
            let json = try #require(
                try JSONSerialization.jsonObject(with: Data(lines[start...end].joined(separator: "\n").utf8))
                    as? [String: Any])
            var streams: [String: [String: Any]] = [:]
            for row in json["streams"] as? [[String: Any]] ?? [] {
                if let name = row["stream"] as? String { streams[name] = row }
            }
            return (streams, json["leader"] as? String)
        }

        /// `leasehold loadtest` (20,000 bookings, 1,000 slots × 20, 32 clients) through a stack on
        /// the cluster: every load-test invariant holds (one booking per slot, every 2xx one outcome
        /// in the inbox, no booking told but not kept), and every shard's stream took part.
        @Test func twentyThousandBookingsOverTheShardsPassEveryLoadTestInvariant() async throws {
            try await LocalRedisCluster.run(masters: 3) { cluster in
                let stack = try await ProcessStack.start(
                    ingress: 2, workers: 2, supervisors: 1, shards: 3, redisURL: cluster.url)
                let result = try await LeaseholdExecutable.run(
                    [
                        "loadtest", "--url", stack.ingressURL(0), "--url", stack.ingressURL(1), "--json", "--slots",
                        "1000", "--per-slot", "20", "--concurrency", "32", "--no-pgbench",
                    ],
                    in: stack.directory, environment: stack.environment, timeout: .seconds(900))
                #expect(result.status == 0, "\(result.output.suffix(3_000))")
                let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
                let start = try #require(lines.firstIndex(of: "{"), "no JSON in:\n\(result.output.suffix(3_000))")
                let report = try #require(
                    try JSONSerialization.jsonObject(with: Data(lines[start...].joined(separator: "\n").utf8))
                        as? [String: Any])
                #expect(report["passed"] as? Bool == true, "\(report["invariants"] ?? "")")
                #expect(report["completed"] as? Int == 20_000)
                for stream in stack.keys.streams("bookings") {
                    let info = try await stack.redis.send("XINFO", "STREAM", stream)
                    #expect(info.fieldMap?["entries-added"]?.int ?? 0 > 1_000, "\(stream) carried its share")
                }
                await stack.shutdown()
            }
        }

        /// A master is killed with `kill -9` while bookings arrive; a replica takes over. With
        /// `LEASEHOLD_REDIS_MIN_REPLICAS=1` every 2xx was on a replica first, so every accepted
        /// booking gets exactly one outcome; requests refused meanwhile (503) are retried with the
        /// same request_id, as a sender does. Two replicas per master, so the promoted one still
        /// has a replica to confirm with (with one, that shard would answer 503 until a replica
        /// is added again: the setting's promise holds either way).
        @Test func killDashNineOfAMasterMidRunLosesNoAcceptedBooking() async throws {
            try await LocalRedisCluster.run(masters: 3, replicasPerMaster: 2, nodeTimeout: .seconds(2)) { cluster in
                let fast = [
                    "LEASEHOLD_LEASE_TTL_MS": "3000", "LEASEHOLD_VISIBILITY_TIMEOUT_MS": "6000",
                    "LEASEHOLD_SUPERVISOR_INTERVAL_MS": "200", "LEASEHOLD_LEADER_TTL_MS": "3000",
                    "LEASEHOLD_RETRY_BASE_MS": "100", "LEASEHOLD_RETRY_MAX_DELAY_MS": "1000",
                ]
                let stack = try await ProcessStack.start(
                    ingress: 2, workers: 2, workerEnvironment: fast,
                    ingressEnvironment: [
                        "LEASEHOLD_REDIS_MIN_REPLICAS": "1", "LEASEHOLD_REDIS_REPLICA_TIMEOUT_MS": "2000",
                    ],
                    supervisors: 1, supervisorEnvironment: fast, shards: 3, redisURL: cluster.url)
                let slots = try await stack.seed(slots: 50, users: 300)
                let next = SharedCounter()
                let refusedOnce = SharedCounter()
                let killed = SharedCounter()
                let victim = try #require(
                    try await cluster.map().master(
                        forSlot: RedisClusterSlot.slot(for: stack.keys.stream("bookings", shard: 0))))
                // 20 clients send 300 bookings (6 per slot); at the 100th, the master of bookings
                // shard 0 dies.
                let accepted = try await withThrowingTaskGroup(of: [String].self) { group in
                    for client in 0..<20 {
                        group.addTask {
                            var mine: [String] = []
                            while true {
                                let index = next.next()
                                guard index < 300 else { return mine }
                                if index == 100, killed.next() == 0 { await cluster.kill(victim) }
                                let requestID = "kill-\(index)"
                                let deadline = ContinuousClock.now + .seconds(60)
                                while ContinuousClock.now < deadline {
                                    let response = try? await stack.book(
                                        requestID: requestID, userID: Int64(index + 1), slotID: slots[index % 50],
                                        ingress: client % 2)
                                    if response?.status == 202 {
                                        mine.append(requestID)
                                        break
                                    }
                                    refusedOnce.add()
                                    try await Task.sleep(for: .milliseconds(200))
                                }
                            }
                        }
                    }
                    return try await group.reduce(into: [String]()) { $0 += $1 }
                }
                #expect(accepted.count == 300, "every request was accepted in the end (\(refusedOnce.value) refusals)")
                _ = try await cluster.waitForFailover(of: victim)

                // Every accepted booking has one outcome; one booking per slot.
                var outcomes: [String: Int] = [:]
                for requestID in accepted {
                    outcomes[try await stack.outcome(of: requestID, timeout: .seconds(120)), default: 0] += 1
                }
                #expect(outcomes["booked"] == 50, "\(outcomes)")
                #expect(outcomes["slot_taken"] == accepted.count - 50, "\(outcomes)")
                let inbox = try await stack.postgres.query("SELECT count(*) FROM inbox").single()
                    .decode(Int64.self, at: 0)
                #expect(inbox == accepted.count, "each accepted request committed once")
                let doubled = try await stack.postgres.query(
                    "SELECT count(*) FROM (SELECT time_slot_id FROM interviews WHERE status = 'active' GROUP BY 1 HAVING count(*) > 1) d"
                ).single().decode(Int64.self, at: 0)
                #expect(doubled == 0, "no slot booked twice")
                await stack.shutdown()
            }
        }
    }
}
