import Foundation
import LeaseholdDomain
import LeaseholdLocalStack
import LeaseholdPostgres

/// The raw database limits: Leasehold's booking transaction run by pgbench, against the same
/// database, at the same concurrency and the same contention, with no HTTP, Redis or worker in
/// between, in two forms.
///
/// - ``Form/statements``: the booking as an application writes it when it issues each statement
///   from its code (the shape of the Python bots Leasehold replaced, and of Leasehold before the
///   booking became a function): inbox insert, user and slot `FOR UPDATE`, the two
///   active-interview checks, the conditional interview insert, the inbox outcome, the outbox
///   reply — one round trip each, with the slot's lock held across all of them.
/// - ``Form/function``: what Leasehold ships, one `SELECT … FROM leasehold_book(…)` per booking
///   (one round trip, the same locks taken inside the server), sent as a prepared statement
///   (`pgbench -M prepared`) as the worker sends it: parsed and planned once per connection.
///   The statement form runs in pgbench's default simple protocol, parsed and planned every time,
///   as an application interpolating its statements does.
///
/// Transaction `i` (numbered by a sequence shared by every pgbench client, taken in the first
/// statement so it costs no extra round trip) books slot `(i / per_slot) % slots` for user
/// `i % users` — the load tester's request plan, so all three see the same contention.
public enum Pgbench {
    public struct Result: Sendable, Codable, Equatable {
        public var transactions: Int
        public var tps: Double
        public var clients: Int
        /// pgbench's `-M`: `simple` (parsed and planned per statement) or `prepared`.
        public var queryMode: String
    }

    /// Which script pgbench runs.
    public enum Form: String, Sendable, CaseIterable {
        case statements
        case function

        /// The message key prefix of this form's inbox rows (never an application's: `api:`, `tg:`, `yk:`).
        var keyPrefix: String { self == .statements ? "pgb" : "pgf" }

        /// pgbench's `-M`: how the form's statements reach the server.
        var queryMode: String { self == .statements ? "simple" : "prepared" }
    }

    static func script(_ form: Form, sequence: String, run: Int64) -> String {
        switch form {
        case .statements: statementsScript(sequence: sequence, run: run)
        case .function: functionScript(sequence: sequence, run: run)
        }
    }

    static func functionScript(sequence: String, run: Int64) -> String {
        let replies = BookingTransaction.replies.replacingOccurrences(of: "'", with: "''")
        return """
            SELECT b.* FROM (SELECT nextval('\(sequence)') AS i) AS n, LATERAL leasehold_book('\(Form.function.keyPrefix):\(run):' || n.i, 'book', :user_lo + n.i % :user_count, :slot_lo + (n.i / :per_slot) % :slot_count, NULL, :user_lo + n.i % :user_count, 'pgbench ' || n.i, NULL, NULL, true, false, '\(replies)'::jsonb) AS b;

            """
    }

    static func statementsScript(sequence: String, run: Int64) -> String {
        """
        BEGIN;
        INSERT INTO inbox (message_key, kind, outcome) VALUES ('\(Form.statements.keyPrefix):\(run):' || nextval('\(sequence)'), 'booking', 'pending') ON CONFLICT (message_key) DO NOTHING RETURNING split_part(message_key, ':', 3)::bigint AS i \\gset
        \\set slot :slot_lo + (:i / :per_slot) % :slot_count
        \\set usr :user_lo + :i % :user_count
        SELECT telegram_chat_id FROM users WHERE id = :usr FOR UPDATE;
        SELECT id, is_open FROM time_slots WHERE id = ANY(ARRAY[:slot]::bigint[]) ORDER BY id FOR UPDATE;
        SELECT count(*) AS taken FROM interviews WHERE time_slot_id = :slot AND status = 'active' \\gset
        SELECT count(*) AS mine FROM interviews WHERE user_id = :usr AND status = 'active' \\gset
        \\if :taken = 0 and :mine = 0
        INSERT INTO interviews (user_id, time_slot_id, message_key) VALUES (:usr, :slot, '\(Form.statements.keyPrefix):\(run):' || :i) RETURNING id;
        \\endif
        UPDATE inbox SET outcome = 'done', processed_at = clock_timestamp() WHERE message_key = '\(Form.statements.keyPrefix):\(run):' || :i;
        INSERT INTO outbox (message_key, chat_id, method, payload) VALUES ('\(Form.statements.keyPrefix):\(run):' || :i, :usr, 'sendMessage', jsonb_build_object('chat_id', :usr, 'text', 'pgbench'));
        COMMIT;

        """
    }

    /// Runs `transactions` booking transactions from `clients` connections over `slotIDs` and
    /// `users` (fresh ones, created for this comparison; the slot IDs must be consecutive). The
    /// script and pgbench's log go to `directory`, which is removed unless pgbench failed.
    static func run(
        _ form: Form, postgresURL: String, run: Int64, clients: Int, transactions: Int, slotIDs: [Int64],
        users: ClosedRange<Int64>, requestsPerSlot: Int, postgres: PostgresClient, directory: URL
    ) async throws -> Result {
        let binary = try LocalStack.postgresBinaries().appendingPathComponent("pgbench")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw LoadTestError.pgbench("pgbench not found at \(binary.path)")
        }
        guard let low = slotIDs.min(), let high = slotIDs.max(), high - low + 1 == Int64(slotIDs.count) else {
            throw LoadTestError.pgbench(
                "the comparison's slot IDs are not consecutive (slots created meanwhile?); run again")
        }
        let sequence = "leasehold_pgbench_\(form.rawValue)_\(run)"
        try await postgres.execute(PostgresQuery(unsafeSQL: "CREATE SEQUENCE \(sequence) MINVALUE 0 START 0"))
        do {
            let result = try await runPgbench(
                binary: binary, postgresURL: postgresURL, script: script(form, sequence: sequence, run: run),
                queryMode: form.queryMode,
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
        binary: URL, postgresURL: String, script: String, queryMode: String, clients: Int, transactions: Int,
        slots: ClosedRange<Int64>,
        users: ClosedRange<Int64>, requestsPerSlot: Int, directory: URL
    ) async throws -> Result {
        let scriptFile = directory.appendingPathComponent("booking.pgbench.sql")
        try script.write(to: scriptFile, atomically: true, encoding: .utf8)
        let perClient = max(1, transactions / clients)
        let threads = min(clients, ProcessInfo.processInfo.activeProcessorCount)
        let process = try ChildProcess(
            name: "pgbench", executable: binary,
            arguments: [
                "-n", "-M", queryMode, "-f", scriptFile.path, "-c", String(clients), "-j", String(threads), "-t",
                String(perClient),
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
        return Result(
            transactions: perClient * clients, tps: (tps * 10).rounded() / 10, clients: clients, queryMode: queryMode)
    }
}
