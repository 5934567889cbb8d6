import Foundation
import LeaseholdPostgres

/// The admin's `/sync_slots`: upsert a schedule of interview slots without touching booked ones.
///
/// - A slot in the schedule that does not exist is created, open.
/// - A slot in the schedule that exists (same interviewer and start) is reopened and gets the
///   schedule's end time — unless it is booked, in which case it is left exactly as it is.
/// - With `closeMissing`, open slots of the schedule's interviewers inside the schedule's time
///   range that the schedule no longer lists are closed — again, never a booked one.
public struct ScheduleSync: Sendable {
    public struct Slot: Sendable, Equatable, Codable {
        public var startsAt: Date
        public var endsAt: Date
        public var interviewer: String

        public init(startsAt: Date, endsAt: Date, interviewer: String) {
            self.startsAt = startsAt
            self.endsAt = endsAt
            self.interviewer = interviewer
        }

        enum CodingKeys: String, CodingKey {
            case startsAt = "starts_at"
            case endsAt = "ends_at"
            case interviewer
        }
    }

    public struct Report: Sendable, Equatable, Codable {
        public var created = 0
        public var updated = 0
        /// Listed in the schedule but booked, so left untouched.
        public var bookedUntouched = 0
        public var closed = 0
        /// Every slot ID the schedule names, in schedule order.
        public var slotIDs: [Int64] = []
    }

    public init() {}

    /// Applies `slots`; run it inside a transaction.
    public func sync(_ slots: [Slot], closeMissing: Bool, on connection: some PostgresExecutor) async throws -> Report {
        var report = Report()
        for slot in slots {
            guard slot.endsAt > slot.startsAt else {
                throw ScheduleError.endsBeforeStart(interviewer: slot.interviewer, startsAt: slot.startsAt)
            }
            // xmax = 0 tells a fresh insert from an update; no row back means the WHERE refused the
            // update because the slot is booked.
            let rows = try await connection.query(
                """
                INSERT INTO time_slots (starts_at, ends_at, interviewer)
                VALUES (\(slot.startsAt), \(slot.endsAt), \(slot.interviewer))
                ON CONFLICT ON CONSTRAINT time_slots_natural_key DO UPDATE
                    SET ends_at = EXCLUDED.ends_at, is_open = true, updated_at = now()
                    WHERE NOT EXISTS (
                        SELECT 1 FROM interviews i WHERE i.time_slot_id = time_slots.id AND i.status = 'active')
                RETURNING id, (xmax = 0) AS inserted
                """)
            if let row = rows.first {
                let (id, inserted) = try row.decode(Int64.self, Bool.self)
                report.slotIDs.append(id)
                if inserted { report.created += 1 } else { report.updated += 1 }
            } else {
                let id = try await connection.query(
                    "SELECT id FROM time_slots WHERE interviewer = \(slot.interviewer) AND starts_at = \(slot.startsAt)"
                ).single().decode(Int64.self, at: 0)
                report.slotIDs.append(id)
                report.bookedUntouched += 1
            }
        }
        if closeMissing, let first = slots.map(\.startsAt).min(), let last = slots.map(\.startsAt).max() {
            let interviewers = Array(Set(slots.map(\.interviewer)))
            for interviewer in interviewers {
                report.closed += try await connection.execute(
                    """
                    UPDATE time_slots t SET is_open = false, updated_at = now()
                    WHERE t.interviewer = \(interviewer) AND t.starts_at BETWEEN \(first) AND \(last)
                      AND t.is_open AND NOT (t.id = ANY(\(PostgresInt8Array(report.slotIDs))))
                      AND NOT EXISTS (SELECT 1 FROM interviews i WHERE i.time_slot_id = t.id AND i.status = 'active')
                    """)
            }
        }
        return report
    }

    /// Creates users `ids` that do not exist yet (their chat is their id, as in a private chat).
    /// Returns how many were created.
    public func ensureUsers(_ ids: [Int64], on connection: some PostgresExecutor) async throws -> Int {
        try await connection.execute(
            """
            INSERT INTO users (id, telegram_chat_id, name)
            SELECT id, id, 'user ' || id FROM unnest(\(PostgresInt8Array(ids))) AS id
            ON CONFLICT (id) DO NOTHING
            """)
    }

    /// `count` consecutive slots of `length`, starting at `start`.
    public static func generate(count: Int, start: Date, length: TimeInterval, interviewer: String) -> [Slot] {
        (0..<count).map { index in
            let begin = start.addingTimeInterval(Double(index) * length)
            return Slot(startsAt: begin, endsAt: begin.addingTimeInterval(length), interviewer: interviewer)
        }
    }
}

public enum ScheduleError: Error, CustomStringConvertible, Equatable {
    case endsBeforeStart(interviewer: String, startsAt: Date)

    public var description: String {
        switch self {
        case .endsBeforeStart(let interviewer, let startsAt):
            "slot of \(interviewer) at \(startsAt.formatted(.iso8601)) ends before it starts"
        }
    }
}
