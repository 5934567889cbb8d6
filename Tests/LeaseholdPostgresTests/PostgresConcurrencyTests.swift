import Foundation
import LeaseholdPostgres
import LeaseholdTesting
import Synchronization
import Testing

/// Many tasks over a small pool: every reply belongs to its request, and statements that take long
/// on the server hold no thread of Swift's cooperative pool (they wait on the client's reactor).
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
                                    let before = try await connection.query(
                                        "SELECT n FROM \(unescaped: table) WHERE id = 1 FOR UPDATE"
                                    ).single().decode(Int64.self, at: 0)
                                    try await connection.execute(
                                        "UPDATE \(unescaped: table) SET n = \(before + 1) WHERE id = 1")
                                    return try await connection.query("SELECT \(marker)").single().decode(
                                        Int64.self, at: 0)
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

    /// Causal, not timed: while 16 `pg_sleep(10)` calls hold all 16 connections, plain async work
    /// must finish *before* the sleeps do. Were the waits for their results on the cooperative
    /// pool (one thread per core), that work could only run after them.
    @Test("16 concurrent pg_sleep(10) on 16 connections run in parallel while async tasks keep running")
    func blockingCallsDoNotStarveTheCooperativePool() async throws {
        try await PostgresFixture.withClient(size: 16) { client in
            let observer = IntegrationEnvironment.postgresClient(size: 1)
            let clock = ContinuousClock()
            let start = clock.now
            let sleepsDone = SharedCounter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await withThrowingTaskGroup(of: Void.self) { sleeps in
                        for _ in 0..<16 {
                            sleeps.addTask {
                                try await client.query("SELECT pg_sleep(10)")
                            }
                        }
                        try await sleeps.waitForAll()
                    }
                    sleepsDone.add()
                }
                // Wait until all 16 are sleeping on the server.
                while try await observer.query(
                    """
                    SELECT count(*) FROM pg_stat_activity
                    WHERE query LIKE '%pg_sleep(10)%' AND state = 'active' AND pid <> pg_backend_pid()
                      AND application_name = 'leasehold-tests'
                    """
                ).single().decode(Int64.self, at: 0) < 16 {
                    try await Task.sleep(for: .milliseconds(20))
                }
                // Plain async work on the cooperative pool.
                var total = 0
                for step in 0..<100 {
                    await Task.yield()
                    total += step
                }
                #expect(total == 4950)
                #expect(sleepsDone.value == 0, "async work ran while every connection was blocked")
                try await group.waitForAll()
            }
            // Serially 16 × 10 s = 160 s; on a 2-thread cooperative pool 80 s; in parallel about 10 s.
            #expect(clock.now - start < .seconds(60))
            await observer.close()
        }
    }
}
