import Foundation
import LeaseholdPostgres
import LeaseholdTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 25: the worker's prepared statements after a migration changed what they return.
extension SystemTests {
    @Suite("A prepared statement the server no longer accepts")
    struct PreparedStatementReplacementTests {
        static let fastSupervisor = [
            "LEASEHOLD_LEASE_TTL_MS": "1000", "LEASEHOLD_VISIBILITY_TIMEOUT_MS": "2000",
            "LEASEHOLD_SUPERVISOR_INTERVAL_MS": "100",
            "LEASEHOLD_RETRY_BASE_MS": "100", "LEASEHOLD_RETRY_MAX_DELAY_MS": "300",
        ]

        /// A migration replaces `leasehold_book` with another result type (its outcome column
        /// becomes varchar) while bookings flow: every worker connection holds the statement
        /// prepared for the old function, and the server answers 0A000 "cached plan must not
        /// change result type" on each. The worker prepares it again and carries on: every booking
        /// is booked, nothing is dead-lettered (with two attempts allowed, a failure per attempt
        /// would dead-letter at once).
        @Test func replacingLeaseholdBookWithAnotherResultTypeUnderLoadDeadLettersNothing() async throws {
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1,
                workerEnvironment: [
                    "LEASEHOLD_WORKER_CONCURRENCY": "8", "LEASEHOLD_RETRY_BASE_MS": "100",
                    "LEASEHOLD_RETRY_MAX_DELAY_MS": "300", "LEASEHOLD_RETRY_MAX_ATTEMPTS": "2",
                ], supervisors: 1,
                supervisorEnvironment: Self.fastSupervisor.merging(["LEASEHOLD_RETRY_MAX_ATTEMPTS": "2"]) { $1 })
            let total = 300
            let slots = try await stack.seed(slots: total, users: total)
            #expect(slots.count == total)

            let load = Task {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for index in 0..<total {
                        if index >= 8 { _ = try await group.next() }
                        group.addTask {
                            try await stack.book(
                                requestID: "swap-\(index)", userID: Int64(index + 1), slotID: slots[index]
                            ).status
                        }
                        try await Task.sleep(for: .milliseconds(5))
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }.count
                }
            }
            // Under way: then the migration.
            try await waitUntil { try await Self.count("inbox", stack) >= 60 }
            let stale = "cached plan must not change result type"
            let staleBefore = ProcessStack.postgresLogLines(containing: stale)?.count
            let definition = try await stack.postgres.query(
                "SELECT pg_get_functiondef('leasehold_book'::regproc)"
            ).single().decode(String.self, at: 0)
            let changed = definition.replacingOccurrences(
                of: "OUT o_outcome text", with: "OUT o_outcome character varying")
            #expect(changed != definition)
            try await stack.postgres.withTransaction { connection in
                try await connection.simpleQuery("DROP FUNCTION leasehold_book")
                try await connection.simpleQuery(changed)
            }
            let doneAtTheMigration = try await Self.count("inbox", stack)
            #expect(doneAtTheMigration < Int64(total), "the migration ran while bookings flowed")
            _ = try await load.value

            try await waitUntil(timeout: .seconds(120)) {
                try await Self.count("inbox", stack) + Self.count("dead_letters", stack) >= Int64(total)
            }
            #expect(try await Self.count("dead_letters", stack) == 0)
            if let staleBefore, let staleAfter = ProcessStack.postgresLogLines(containing: stale)?.count {
                #expect(staleAfter > staleBefore, "the server refused the worker's prepared statement")
            }
            let booked = try await stack.postgres.query("SELECT count(*) FROM inbox WHERE outcome = 'booked'")
                .single().decode(Int64.self, at: 0)
            #expect(booked == Int64(total))
            await stack.shutdown()
        }

        static func count(_ table: String, _ stack: ProcessStack) async throws -> Int64 {
            try await stack.postgres.query("SELECT count(*) FROM \(unescaped: table)").single().decode(
                Int64.self, at: 0)
        }
    }
}
