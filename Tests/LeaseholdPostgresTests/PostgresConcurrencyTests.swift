import LeaseholdPostgres
import LeaseholdTesting
import Synchronization
import Testing

/// Many tasks over a small pool: every reply belongs to its request, and blocking libpq calls run on
/// the pool's own threads, never on Swift's cooperative pool.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(2)))
struct PostgresConcurrencyTests {
    @Test("64 tasks × 200 echo calls over 16 connections: every reply matches its request")
    func noInterleavedReplies() async throws {
        try await PostgresFixture.withClient(size: 16) { client in
            let (mismatches, backends) = try await withThrowingTaskGroup(of: ([String], Set<Int32>).self) { group in
                for task in 0..<64 {
                    group.addTask {
                        var mismatches: [String] = []
                        var backends = Set<Int32>()
                        for call in 0..<200 {
                            let id = Int64(task) * 1_000_000 + Int64(call)
                            let text = "task \(task) call \(call) 🎉 Вы \(String(repeating: "x", count: call % 17))"
                            let row = try await client.query("SELECT \(id)::bigint, \(text)::text, pg_backend_pid()")
                                .single()
                            let (echoedID, echoedText, backend) = try row.decode(Int64.self, String.self, Int32.self)
                            if echoedID != id || echoedText != text {
                                mismatches.append("sent (\(id), \(text)), got (\(echoedID), \(echoedText))")
                            }
                            backends.insert(backend)
                        }
                        return (mismatches, backends)
                    }
                }
                var mismatches: [String] = []
                var backends = Set<Int32>()
                for try await (taskMismatches, taskBackends) in group {
                    mismatches += taskMismatches
                    backends.formUnion(taskBackends)
                }
                return (mismatches, backends)
            }
            #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
            #expect(backends.count <= 16)
            #expect(backends.count > 1)
        }
    }

    @Test("64 tasks incrementing one row in transactions lose no update")
    func transactionsDoNotInterleave() async throws {
        try await PostgresFixture.withClient(size: 16) { client in
            try await PostgresFixture.withTable(client, columns: "id int PRIMARY KEY, n bigint NOT NULL") { table in
                try await client.execute("INSERT INTO \(unescaped: table) VALUES (1, 0)")
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for task in 0..<64 {
                        group.addTask {
                            for call in 0..<25 {
                                let marker = Int64(task * 100 + call)
                                let seen = try await client.withTransaction { connection in
                                    let before = try connection.query(
                                        "SELECT n FROM \(unescaped: table) WHERE id = 1 FOR UPDATE"
                                    ).single().decode(Int64.self, at: 0)
                                    try connection.execute(
                                        "UPDATE \(unescaped: table) SET n = \(before + 1) WHERE id = 1")
                                    return try connection.query("SELECT \(marker)").single().decode(Int64.self, at: 0)
                                }
                                #expect(seen == marker)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let total = try await client.query("SELECT n FROM \(unescaped: table) WHERE id = 1")
                    .single().decode(Int64.self, at: 0)
                #expect(total == 64 * 25)
            }
        }
    }

    @Test("16 concurrent pg_sleep(1) on 16 connections run in parallel while async tasks keep running")
    func blockingCallsDoNotStarveTheCooperativePool() async throws {
        try await PostgresFixture.withClient(size: 16) { client in
            // Open all 16 connections first, so the measurement is of the sleeps alone.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<16 { group.addTask { try await client.query("SELECT pg_sleep(0.2)") } }
                try await group.waitForAll()
            }

            let clock = ContinuousClock()
            let start = clock.now
            // A plain async task that only makes progress if the cooperative pool has free threads.
            async let ticks: Int = {
                var ticks = 0
                while clock.now - start < .milliseconds(900) {
                    try await Task.sleep(for: .milliseconds(10))
                    ticks += 1
                }
                return ticks
            }()
            let backends = try await withThrowingTaskGroup(of: Int32.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        try await client.query("SELECT pg_backend_pid() FROM pg_sleep(1)").single()
                            .decode(Int32.self, at: 0)
                    }
                }
                return try await group.reduce(into: Set<Int32>()) { $0.insert($1) }
            }
            let elapsed = clock.now - start
            let progress = try await ticks

            #expect(backends.count == 16)  // each sleep had its own connection
            // Serially this is 16 s; on the cooperative pool (one thread per core) it would be
            // 16 s / cores. In parallel on dedicated threads it is about 1 s.
            #expect(elapsed < .seconds(6))
            // Blocked cooperative threads would leave the ticker at 0 or 1 during the sleeps.
            #expect(progress >= 10)
        }
    }
}
