import Foundation
import LeaseholdPostgres

extension LoadTest {
    typealias InboxRow = RunInvariants.InboxRow

    /// Every inbox row of this run, by request index, read in one statement (one snapshot).
    func inboxSnapshot(plan: RequestPlan, postgres: PostgresClient) async throws -> [Int: InboxRow] {
        var rows: [Int: InboxRow] = [:]
        for row in try await postgres.query(
            """
            SELECT message_key, outcome,
                   (extract(epoch FROM processed_at) * 1000000)::bigint
                       - split_part(entry_id, '-', 1)::bigint * 1000,
                   extract(epoch FROM processed_at)::float8
            FROM inbox WHERE message_key ~ \(plan.keyPattern)
            """)
        {
            let (key, outcome, micros, committedAt) = try row.decode(String.self, String.self, Int64?.self, Double.self)
            guard let index = plan.index(ofKey: key) else { continue }
            rows[index] = InboxRow(
                index: index, key: key, outcome: outcome, endToEndMicros: micros, committedAt: committedAt)
        }
        return rows
    }

    /// The "duplicate key value" lines in the PostgreSQL log (`--postgres-log`), or `nil` without one.
    func duplicateKeyLines() -> Int? {
        guard let path = configuration.postgresLog,
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        else { return nil }
        return text.split(separator: "\n").filter { $0.contains("duplicate key value") }.count
    }

    /// Reads what the invariants are checked on: the double-booked slots of the whole database and
    /// the active interviews of the run's slots, beside the snapshot and what the clients recorded.
    func invariantInputs(
        plan: RequestPlan, snapshot: [Int: InboxRow], stats: SendStatistics, duplicatesBefore: Int?,
        postgres: PostgresClient
    ) async throws -> RunInvariants {
        let doubleBooked = try await postgres.query(
            """
            SELECT count(*) FROM (
                SELECT time_slot_id FROM interviews WHERE status = 'active'
                GROUP BY time_slot_id HAVING count(*) > 1) doubled
            """
        ).single().decode(Int.self, at: 0)
        var bookedKeys: [Int64: [String]] = [:]
        for row in try await postgres.query(
            """
            SELECT time_slot_id, message_key FROM interviews
            WHERE status = 'active' AND time_slot_id = ANY(\(PostgresInt8Array(plan.slotIDs)))
            """)
        {
            let (slot, key) = try row.decode(Int64.self, String.self)
            bookedKeys[slot, default: []].append(key)
        }
        let duplicates: (before: Int, after: Int)? =
            if let before = duplicatesBefore, let after = duplicateKeyLines() { (before, after) } else { nil }
        return RunInvariants(
            plan: plan, snapshot: snapshot,
            sent: .init(
                handedOut: stats.handedOut, accepted: stats.accepted, unanswered: Set(stats.unanswered),
                rejected: Set(stats.rejectedIndices), dropped: Set(stats.droppedIndices)),
            doubleBookedSlots: doubleBooked, bookedKeys: bookedKeys, duplicateKeyErrors: duplicates)
    }
}
