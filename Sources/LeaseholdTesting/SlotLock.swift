import LeaseholdPostgres

/// Holds `SELECT … FOR UPDATE` on a slot in a transaction of its own, so a worker's booking
/// transaction blocks mid-way (after its inbox insert and user lock) until released.
public final class SlotLock: Sendable {
    private let connection: PostgresSession

    public init(_ stack: ProcessStack, slot: Int64) async throws {
        connection = try await PostgresSession.open(stack.database.configuration)
        try await connection.simpleQuery("BEGIN")
        try await connection.query("SELECT id FROM time_slots WHERE id = \(slot) FOR UPDATE")
    }

    public func release() async throws {
        try await connection.simpleQuery("ROLLBACK")
        await connection.close()
    }
}
