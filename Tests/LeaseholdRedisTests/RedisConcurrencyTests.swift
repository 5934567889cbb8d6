import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Many tasks over a small pool: every reply belongs to its request, and blocking hiredis calls run
/// on the pool's own threads, never on Swift's cooperative pool.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(2)))
struct RedisConcurrencyTests {
    @Test("64 tasks × 200 calls over 16 connections (ECHO, SET+GET, small pipelines): no reply is interleaved")
    func noInterleavedReplies() async throws {
        try await RedisFixture.withClient(size: 16) { client, prefix in
            let mismatches = try await withThrowingTaskGroup(of: [String].self) { group in
                for task in 0..<64 {
                    group.addTask {
                        var mismatches: [String] = []
                        func check(_ reply: RedisValue, _ expected: RedisValue, _ what: String) {
                            if reply != expected { mismatches.append("\(what): expected \(expected), got \(reply)") }
                        }
                        let key = prefix + "task\(task)"
                        for call in 0..<200 {
                            let value = Array("task \(task) call \(call) 🎉".utf8) + [0, UInt8(call % 256)]
                            switch call % 3 {
                            case 0:
                                check(try await client.send("ECHO", value), .bulk(value), "ECHO")
                            case 1:
                                check(try await client.send("SET", key, value), .status("OK"), "SET")
                                check(try await client.send("GET", key), .bulk(value), "GET")
                            default:
                                let replies = try await client.pipeline([
                                    RedisCommand("SET", key, value),
                                    RedisCommand("GET", key),
                                    RedisCommand("ECHO", "\(task)/\(call)"),
                                    RedisCommand("INCR", key + ":n"),
                                ])
                                check(.array(replies), .array([
                                    .status("OK"), .bulk(value), .bulk(Array("\(task)/\(call)".utf8)),
                                    .integer(Int64(call / 3 + 1)),
                                ]), "pipeline")
                            }
                        }
                        return mismatches
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
        }
    }

    @Test("16 concurrent BLPOP … 1 on 16 connections run in parallel while async tasks keep running")
    func blockingCallsDoNotStarveTheCooperativePool() async throws {
        try await RedisFixture.withClient(size: 16) { client, prefix in
            // Open all 16 connections first.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<16 {
                    group.addTask {
                        try await client.send(RedisCommand("BLPOP", prefix + "warm\(index)", "0.2"), timeout: .seconds(3))
                    }
                }
                try await group.waitForAll()
            }

            let clock = ContinuousClock()
            let start = clock.now
            async let ticks: Int = {
                var ticks = 0
                while clock.now - start < .milliseconds(900) {
                    try await Task.sleep(for: .milliseconds(10))
                    ticks += 1
                }
                return ticks
            }()
            let ids = try await withThrowingTaskGroup(of: String?.self) { group in
                for index in 0..<16 {
                    group.addTask {
                        try await client.withConnection { connection in
                            let reply = try connection.send(
                                RedisCommand("BLPOP", prefix + "empty\(index)", 1), timeout: .seconds(5))
                            guard reply == .null else { return nil }
                            return RedisFixture.clientInfo("id", in: try connection.send("CLIENT", "INFO"))
                        }
                    }
                }
                return try await group.reduce(into: Set<String>()) { ids, id in if let id { ids.insert(id) } }
            }
            let elapsed = clock.now - start
            let progress = try await ticks

            #expect(ids.count == 16)  // each BLPOP had its own connection and timed out with nil
            #expect(elapsed < .seconds(6))  // serially 16 s; on a 2-thread cooperative pool 8 s
            #expect(progress >= 10)
        }
    }
}
