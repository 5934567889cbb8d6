import Foundation
import LeaseholdPostgres
import LeaseholdTesting

extension SystemTests {
    /// Holds `SELECT … FOR UPDATE` on a slot in a transaction of its own, so a worker's booking
    /// transaction blocks mid-way (after its inbox insert and user lock) until released.
    final class SlotLock: @unchecked Sendable {
        // @unchecked: used from one test task at a time, never concurrently.
        private let connection: PostgresConnection

        init(_ stack: ProcessStack, slot: Int64) throws {
            connection = try PostgresConnection(configuration: stack.database.configuration)
            try connection.simpleQuery("BEGIN")
            try connection.query("SELECT id FROM time_slots WHERE id = \(slot) FOR UPDATE")
        }

        func release() throws {
            try connection.simpleQuery("ROLLBACK")
            connection.close()
        }
    }

    /// Worker backends waiting on a row lock.
    static func blockedWorkerTransactions(_ stack: ProcessStack) async throws -> Int64 {
        try await stack.postgres.query(
            """
            SELECT count(*) FROM pg_stat_activity
            WHERE datname = \(stack.database.name) AND application_name = 'leasehold-worker'
              AND wait_event_type = 'Lock'
            """
        ).single().decode(Int64.self, at: 0)
    }
}
