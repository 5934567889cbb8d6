import Foundation
import LeaseholdOps
import LeaseholdPostgres

/// The raw database limit: Leasehold's booking transaction run by pgbench, against the same
/// database, at the same concurrency and the same contention, with no HTTP, Redis or worker in
/// between.
///
/// The script issues the statements `BookingTransaction` issues, in the same order and with the
/// same locks (inbox insert, user and slot `FOR UPDATE`, the two active-interview checks, the
/// conditional interview insert, the inbox outcome, the outbox reply), one round trip each.
/// Transaction `i` (numbered by a sequence shared by every pgbench client, taken in the inbox
/// insert so it costs no extra round trip) books slot `(i / per_slot) % slots` for user
/// `i % users` — the load tester's request plan, so both see the same contention.
public enum Pgbench {
    public struct Result: Sendable, Codable, Equatable {
        public var transactions: Int
        public var tps: Double
        public var clients: Int
    }

    static func script(sequence: String, run: Int64) -> String {
        """
        BEGIN;
        INSERT INTO inbox (message_key, kind, outcome) VALUES ('pgb:\(run):' || nextval('\(sequence)'), 'booking', 'pending') ON CONFLICT (message_key) DO NOTHING RETURNING split_part(message_key, ':', 3)::bigint AS i \\gset
        \\set slot :slot_lo + (:i / :per_slot) % :slot_count
        \\set usr :user_lo + :i % :user_count
        SELECT telegram_chat_id FROM users WHERE id = :usr FOR UPDATE;
        SELECT id, is_open FROM time_slots WHERE id = ANY(ARRAY[:slot]::bigint[]) ORDER BY id FOR UPDATE;
        SELECT count(*) AS taken FROM interviews WHERE time_slot_id = :slot AND status = 'active' \\gset
        SELECT count(*) AS mine FROM interviews WHERE user_id = :usr AND status = 'active' \\gset
        \\if :taken = 0 and :mine = 0
        INSERT INTO interviews (user_id, time_slot_id, message_key) VALUES (:usr, :slot, 'pgb:\(run):' || :i) RETURNING id;
        \\endif
        UPDATE inbox SET outcome = 'done', processed_at = clock_timestamp() WHERE message_key = 'pgb:\(run):' || :i;
        INSERT INTO outbox (message_key, chat_id, method, payload) VALUES ('pgb:\(run):' || :i, :usr, 'sendMessage', jsonb_build_object('chat_id', :usr, 'text', 'pgbench'));
        COMMIT;

        """
    }

    /// Runs `transactions` booking transactions from `clients` connections over `slotIDs` and
    /// `users` (fresh ones, created for this comparison; the slot IDs must be consecutive). The
    /// script and pgbench's log go to `directory`, which is removed unless pgbench failed.
    static func run(
        postgresURL: String, run: Int64, clients: Int, transactions: Int, slotIDs: [Int64],
        users: ClosedRange<Int64>, requestsPerSlot: Int, postgres: PostgresClient, directory: URL
    ) async throws -> Result {
        let binary = try LocalStack.postgresBinaries().appendingPathComponent("pgbench")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw LoadTestError.pgbench("pgbench not found at \(binary.path)")
        }
        guard let low = slotIDs.min(), let high = slotIDs.max(), high - low + 1 == Int64(slotIDs.count) else {
            throw LoadTestError.pgbench("the comparison's slot IDs are not consecutive (slots created meanwhile?); run again")
        }
        let sequence = "leasehold_pgbench_\(run)"
        try await postgres.execute(PostgresQuery(unsafeSQL: "CREATE SEQUENCE \(sequence) MINVALUE 0 START 0"))
        do {
            let result = try await runPgbench(
                binary: binary, postgresURL: postgresURL, script: script(sequence: sequence, run: run),
                clients: clients, transactions: transactions, slots: low...high, users: users,
                requestsPerSlot: requestsPerSlot, directory: directory)
            _ = try? await postgres.execute(PostgresQuery(unsafeSQL: "DROP SEQUENCE IF EXISTS \(sequence)"))
            try? FileManager.default.removeItem(at: directory)  // kept only when pgbench failed
            return result
        } catch {
            _ = try? await postgres.execute(PostgresQuery(unsafeSQL: "DROP SEQUENCE IF EXISTS \(sequence)"))
            throw error
        }
    }

    private static func runPgbench(
        binary: URL, postgresURL: String, script: String, clients: Int, transactions: Int, slots: ClosedRange<Int64>,
        users: ClosedRange<Int64>, requestsPerSlot: Int, directory: URL
    ) async throws -> Result {
        let scriptFile = directory.appendingPathComponent("booking.pgbench.sql")
        try script.write(to: scriptFile, atomically: true, encoding: .utf8)
        let perClient = max(1, transactions / clients)
        let threads = min(clients, ProcessInfo.processInfo.activeProcessorCount)
        let process = try ChildProcess(
            name: "pgbench", executable: binary,
            arguments: [
                "-n", "-f", scriptFile.path, "-c", String(clients), "-j", String(threads), "-t", String(perClient),
                "-D", "slot_lo=\(slots.lowerBound)", "-D", "slot_count=\(slots.count)",
                "-D", "per_slot=\(requestsPerSlot)",
                "-D", "user_lo=\(users.lowerBound)", "-D", "user_count=\(users.count)", postgresURL,
            ],
            log: directory.appendingPathComponent("pgbench.log"))
        guard await process.waitForExit(timeout: .seconds(1800)), process.exitStatus == 0 else {
            throw LoadTestError.pgbench("pgbench failed:\n\(process.output.suffix(2000))")
        }
        let output = process.output
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
            let tps = Double(line.dropFirst("tps = ".count).split(separator: " ").first ?? "")
        else {
            throw LoadTestError.pgbench("no tps line in pgbench output:\n\(output.suffix(2000))")
        }
        return Result(transactions: perClient * clients, tps: (tps * 10).rounded() / 10, clients: clients)
    }
}
