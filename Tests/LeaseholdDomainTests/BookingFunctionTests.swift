import Foundation
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdRuntime
import LeaseholdTesting
import LeaseholdWire
import Testing

/// `leasehold_book` (Migrations/0007_booking_function.sql, redefined by
/// 0009_booking_releases_slot_lock_unless_booked.sql) against a real, migrated PostgreSQL:
/// the double booking of incident 000 (Runbooks/architecture.md) cannot happen, and the proof depends on
/// the slot's `FOR UPDATE`: the same race against a copy of the function without it trips the
/// unique index.
///
/// The race is made deterministic instead of hoped for: the test holds `LOCK interviews IN SHARE
/// MODE`, which lets every booking read `interviews` (the "is the slot taken?" check) but stops
/// its INSERT. Only when every booking is waiting on a lock does the test let go. With the slot
/// locked, one booking waits at its INSERT and the others wait on the slot row, so they see its
/// interview afterwards; without the slot lock all of them have already seen a free slot.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable))
struct BookingFunctionTests {
    static let racers = 8
    /// The migration that defines `leasehold_book` as it runs now.
    static let latestDefinition = "0009_booking_releases_slot_lock_unless_booked.sql"

    struct Fixture {
        let database: TemporaryDatabase
        let client: PostgresClient
        let slot: Int64

        /// - Parameter quiet: keep this database's errors out of the server log (the control
        ///   race's deliberate duplicate key errors must not reach other tests' log checks).
        static func start(quiet: Bool = false) async throws -> Fixture {
            let database = try await TemporaryDatabase.create()
            if quiet {
                let admin = database.client(size: 1)
                try await admin.execute(
                    PostgresQuery(unsafeSQL: "ALTER DATABASE \"\(database.name)\" SET log_min_messages = 'fatal'"))
                await admin.close()
            }
            let client = database.client(size: BookingFunctionTests.racers + 2)
            _ = try await Migrator(client: client).migrate(
                try Migration.load(from: LeaseholdExecutable.migrationsDirectory))
            try await client.execute(
                "INSERT INTO users (id) SELECT g FROM generate_series(1, \(Int64(BookingFunctionTests.racers))) AS g")
            let slot = try await client.query(
                "INSERT INTO time_slots (starts_at, ends_at) VALUES (now(), now() + interval '1 hour') RETURNING id"
            ).single().decode(Int64.self, at: 0)
            return Fixture(database: database, client: client, slot: slot)
        }

        func stop() async {
            await client.close()
            try? await database.drop()
        }

        /// Every racer books the slot for a user of its own while the test holds `interviews`
        /// still; returns each racer's outcome, or the SQLSTATE it failed with.
        func race() async throws -> [String] {
            let blocker = database.client(size: 1)
            defer { Task { await blocker.close() } }
            let (held, holding) = AsyncStream.makeStream(of: Void.self)
            let (release, releasing) = AsyncStream.makeStream(of: Void.self)
            let holder = Task {
                try await blocker.withTransaction { connection in
                    try await connection.execute("LOCK TABLE interviews IN SHARE MODE")
                    holding.yield()
                    // The table lock lasts as long as this transaction, which ends when the test
                    // lets go.
                    for await _ in release { break }
                }
            }
            for await _ in held { break }

            let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
                for user in 1...Int64(BookingFunctionTests.racers) {
                    group.addTask {
                        let request = BookingRequest(
                            action: .book, userID: user, slotID: slot, requestID: "race-\(user)")
                        do {
                            return try await client.withConnection { connection in
                                try await BookingTransaction().run(request, key: "api:race-\(user)", on: connection)
                            }.outcome.rawValue
                        } catch let error as PostgresError {
                            return error.sqlState
                        }
                    }
                }
                // Let go once every racer waits on a lock (the table's or the slot row's).
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline {
                    let waiting = try await client.query(
                        """
                        SELECT count(*) FROM pg_stat_activity
                        WHERE datname = current_database() AND wait_event_type = 'Lock'
                          AND query LIKE '%leasehold_book%'
                        """
                    ).single().decode(Int64.self, at: 0)
                    if waiting == Int64(BookingFunctionTests.racers) { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                releasing.yield()
                var outcomes: [String] = []
                for try await outcome in group { outcomes.append(outcome) }
                return outcomes
            }
            _ = try await holder.value
            return outcomes
        }
    }

    @Test func theRaceBooksTheSlotOnceAndEveryOtherRacerIsToldItIsTaken() async throws {
        let fixture = try await Fixture.start()
        defer { Task { await fixture.stop() } }
        let outcomes = try await fixture.race()
        #expect(outcomes.filter { $0 == "booked" }.count == 1, "\(outcomes)")
        #expect(outcomes.filter { $0 == "slot_taken" }.count == Self.racers - 1, "\(outcomes)")
        let active = try await fixture.client.query(
            "SELECT count(*) FROM interviews WHERE time_slot_id = \(fixture.slot) AND status = 'active'"
        ).single().decode(Int64.self, at: 0)
        #expect(active == 1)
        let recorded = try await fixture.client.query(
            "SELECT count(*) FROM inbox WHERE outcome IN ('booked', 'slot_taken')"
        ).single().decode(Int64.self, at: 0)
        #expect(recorded == Int64(Self.racers), "every racer's outcome is in the inbox")
    }

    /// The control: the same race against the function with the slot's `FOR UPDATE` taken out.
    /// If this stopped failing, the race above would prove nothing.
    @Test func withoutTheSlotLockTheSameRaceTripsTheUniqueIndex() async throws {
        let fixture = try await Fixture.start(quiet: true)
        defer { Task { await fixture.stop() } }
        let migration = try String(
            contentsOf: LeaseholdExecutable.migrationsDirectory.appendingPathComponent(Self.latestDefinition),
            encoding: .utf8)
        let slotLock = "FROM time_slots s WHERE s.id = p_slot FOR UPDATE"
        #expect(migration.contains(slotLock), "the function locks the slot it books")
        let unlocked = migration.replacingOccurrences(of: slotLock, with: "FROM time_slots s WHERE s.id = p_slot")
            .replacingOccurrences(of: "CREATE FUNCTION", with: "CREATE OR REPLACE FUNCTION")
        _ = try await fixture.client.withConnection { try await $0.simpleQuery(unlocked) }

        let outcomes = try await fixture.race()
        #expect(outcomes.filter { $0 == "booked" }.count == 1, "the unique index still holds: \(outcomes)")
        #expect(
            outcomes.filter { $0 == SQLState.uniqueViolation }.count == Self.racers - 1,
            "every other racer saw a free slot and hit duplicate key: \(outcomes)")
    }

    /// A request that is answered anything but `booked` gives the slot's lock back before its
    /// COMMIT (so the requests queued behind a booking do not take turns flushing the WAL), while
    /// a booking keeps it until COMMIT.
    @Test func onlyABookingHoldsTheSlotsLockUntilCommit() async throws {
        let fixture = try await Fixture.start()
        defer { Task { await fixture.stop() } }
        let slot = fixture.slot
        let first = fixture.database.client(size: 1)
        let second = fixture.database.client(size: 1)
        let probe = fixture.database.client(size: 1)
        defer {
            Task {
                await first.close()
                await second.close()
                await probe.close()
            }
        }
        /// Whether the slot's row can be locked right now by someone else.
        func slotIsFree() async throws -> Bool {
            do {
                _ = try await probe.withTransaction { connection in
                    try await connection.execute("SELECT 1 FROM time_slots WHERE id = \(slot) FOR UPDATE NOWAIT")
                }
                return true
            } catch let error as PostgresTransactionError where error.postgresError?.sqlState == "55P03" {
                return false
            }
        }
        @Sendable func book(_ user: Int64, on connection: PostgresConnection) async throws -> String {
            try await BookingTransaction().run(
                BookingRequest(action: .book, userID: user, slotID: slot, requestID: "hold-\(user)"),
                key: "api:hold-\(user)", on: connection
            ).outcome.rawValue
        }

        // User 1 books inside an open transaction: the lock is held until it ends.
        let (booked, bookedSignal) = AsyncStream.makeStream(of: String.self)
        let (commit, committing) = AsyncStream.makeStream(of: Void.self)
        let booking = Task {
            try await first.withTransaction { connection in
                bookedSignal.yield(try await book(1, on: connection))
                for await _ in commit { break }
            }
        }
        var bookedOutcome = ""
        for await outcome in booked {
            bookedOutcome = outcome
            break
        }
        #expect(bookedOutcome == "booked")
        #expect(try await slotIsFree() == false, "a booking holds the slot's lock until COMMIT")

        // User 2 asks for the slot meanwhile: it looks free, so it queues on the lock.
        let (answered, answeredSignal) = AsyncStream.makeStream(of: String.self)
        let (finish, finishing) = AsyncStream.makeStream(of: Void.self)
        let waiting = Task {
            try await second.withTransaction { connection in
                answeredSignal.yield(try await book(2, on: connection))
                for await _ in finish { break }
            }
        }
        try await Task.sleep(for: .milliseconds(200))
        committing.yield()
        try await booking.value
        var secondOutcome = ""
        for await outcome in answered {
            secondOutcome = outcome
            break
        }
        #expect(secondOutcome == "slot_taken")
        // Its transaction is still open, and yet the slot is free: the lock went back at once.
        #expect(try await slotIsFree() == true, "a slot_taken answer does not hold the lock until COMMIT")
        finishing.yield()
        try await waiting.value
        let recorded = try await fixture.client.query(
            "SELECT outcome FROM inbox WHERE message_key = 'api:hold-2'"
        ).single().decode(String.self, at: 0)
        #expect(recorded == "slot_taken", "the answer is committed with its inbox row")
    }
}
