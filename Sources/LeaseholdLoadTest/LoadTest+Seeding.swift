import Foundation
import LeaseholdDomain
import LeaseholdPostgres

extension LoadTest {
    /// Fresh slots and users.
    struct Seeded: Sendable {
        var slotIDs: [Int64]
        var users: ClosedRange<Int64>
    }

    /// Picks this run's number and creates its slots and users, in one transaction under a lock
    /// on `users` that concurrent load tests also take: the number is one no earlier run on this
    /// database used (no slots labelled `loadtest-<run>` yet), so message keys never collide.
    func seedRun(postgres: PostgresClient) async throws -> RequestPlan {
        let configuration = self.configuration
        let (run, seeded) = try await postgres.withTransaction(.init(lockTimeout: .seconds(30), statementTimeout: nil))
        {
            connection in
            try await connection.query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            var run = max(1, Int64(Date().timeIntervalSince1970) - RequestPlan.runEpoch)
            while try await !connection.query(
                "SELECT 1 FROM time_slots WHERE interviewer = \("loadtest-\(run)") LIMIT 1"
            ).isEmpty {
                run += 1
            }
            return (
                run,
                try await Self.seed(
                    label: "loadtest-\(run)", slots: configuration.slots, users: configuration.userCount, on: connection
                )
            )
        }
        return RequestPlan(
            run: run, input: configuration.input, slotIDs: seeded.slotIDs, users: seeded.users,
            requestsPerSlot: configuration.requestsPerSlot, apiToken: configuration.apiToken,
            telegramSecret: configuration.telegramSecret)
    }

    func seed(label: String, users: Int, postgres: PostgresClient) async throws -> Seeded {
        let slots = configuration.slots
        return try await postgres.withTransaction(.init(lockTimeout: .seconds(30), statementTimeout: nil)) {
            connection in
            try await connection.query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            return try await Self.seed(label: label, slots: slots, users: users, on: connection)
        }
    }

    /// Creates `slots` open slots labelled `label` and `users` users with IDs above every
    /// existing one (the caller holds the lock on `users`).
    static func seed(label: String, slots: Int, users: Int, on connection: PostgresConnection) async throws
        -> Seeded
    {
        let base = try await connection.query("SELECT coalesce(max(id), 0) + 1 FROM users").single().decode(
            Int64.self, at: 0)
        let sync = ScheduleSync()
        var next = base
        while next < base + Int64(users) {
            let chunk = min(Int64(100_000), base + Int64(users) - next)
            _ = try await sync.ensureUsers(Array(next..<(next + chunk)), on: connection)
            next += chunk
        }
        let start = Date(timeIntervalSince1970: 4_102_444_800 + Double(Int.random(in: 0..<1_000_000)) * 60)
        let report = try await sync.sync(
            ScheduleSync.generate(count: slots, start: start, length: 1800, interviewer: label),
            closeMissing: false, on: connection)
        guard report.created == slots, report.slotIDs.count == slots else {
            throw LoadTestError.setup("could not create \(slots) fresh slots")
        }
        return Seeded(slotIDs: report.slotIDs, users: base...(base + Int64(users) - 1))
    }
}
