import Foundation
import LeaseholdPostgres
import LeaseholdTesting

extension SystemTests {
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
