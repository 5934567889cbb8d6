import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Many tasks over a few connections: every reply belongs to its request, and blocking Redis
/// commands hold only their connection, never a thread of Swift's cooperative pool.
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
                                check(
                                    .array(replies),
                                    .array([
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

    /// Causal, not timed: while 16 blocking `BLPOP … 20` calls hold all 16 connections, plain
    /// async work must finish *before* they do. Were the blocking calls holding threads of the
    /// cooperative pool (one thread per core), that work could only run after them. (20 s, not less: on a loaded
    /// machine the 16 calls can start seconds apart, and the first must still be blocked when the
    /// last one is.)
    @Test("16 concurrent BLPOP … 20 on 16 connections run in parallel while async tasks keep running")
    func blockingCallsDoNotStarveTheCooperativePool() async throws {
        try await RedisFixture.withClient(size: 16) { client, prefix in
            let observer = try IntegrationEnvironment.redisClient(size: 1)
            let clock = ContinuousClock()
            let start = clock.now
            let blockedDone = SharedCounter()
            let timedOut = SharedCounter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await withThrowingTaskGroup(of: Void.self) { blocked in
                        for index in 0..<16 {
                            blocked.addTask {
                                let reply = try await client.send(
                                    RedisCommand("BLPOP", prefix + "empty\(index)", 20), timeout: .seconds(30))
                                if reply == .null { timedOut.add() }
                            }
                        }
                        try await blocked.waitForAll()
                    }
                    blockedDone.add()
                }
                // Wait until all 16 are blocked on the server.
                while true {
                    let info = try await observer.send("INFO", "clients").string ?? ""
                    let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("blocked_clients:") }
                    if let line, let count = Int(line.dropFirst("blocked_clients:".count)), count >= 16 { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                var total = 0
                for step in 0..<100 {
                    await Task.yield()
                    total += step
                }
                #expect(total == 4950)
                #expect(blockedDone.value == 0, "async work ran while every connection was blocked")
                try await group.waitForAll()
            }
            #expect(timedOut.value == 16, "each BLPOP had its own connection and timed out with nil")
            // Serially 16 × 20 s = 320 s; on a 2-thread cooperative pool 160 s; in parallel about 20 s.
            #expect(clock.now - start < .seconds(80))
            observer.close()
        }
    }
}
