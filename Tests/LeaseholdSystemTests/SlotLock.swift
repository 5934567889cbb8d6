import Foundation
import LeaseholdPostgres
import LeaseholdTesting

extension SystemTests {
    /// Holds `SELECT … FOR UPDATE` on a slot in a transaction of its own, so a worker's booking
    /// transaction blocks mid-way (after its inbox insert and user lock) until released.
    final class SlotLock: Sendable {
        private let connection: PostgresSession

        init(_ stack: ProcessStack, slot: Int64) async throws {
            connection = try await PostgresSession.open(stack.database.configuration)
            try await connection.simpleQuery("BEGIN")
            try await connection.query("SELECT id FROM time_slots WHERE id = \(slot) FOR UPDATE")
        }

        func release() async throws {
            try await connection.simpleQuery("ROLLBACK")
            await connection.close()
        }
    }

    /// One ``SlotLock`` per slot, in order.
    static func slotLocks(_ stack: ProcessStack, _ slots: [Int64]) async throws -> [SlotLock] {
        var locks: [SlotLock] = []
        for slot in slots { locks.append(try await SlotLock(stack, slot: slot)) }
        return locks
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
