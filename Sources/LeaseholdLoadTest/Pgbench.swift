import Foundation
import LeaseholdOps

/// The raw database limit: Leasehold's booking transaction run by pgbench, against the same
/// database, at the same concurrency and the same contention (slots × requests per slot), with
/// no HTTP, Redis or worker in between.
///
/// The script issues the statements `BookingTransaction` issues, in the same order and with the
/// same locks (inbox insert, user and slot `FOR UPDATE`, the two active-interview checks, the
/// conditional interview insert, the inbox outcome, the outbox reply), one round trip each.
public enum Pgbench {
    public struct Result: Sendable, Codable, Equatable {
        public var transactions: Int
        public var tps: Double
        public var clients: Int
    }

    static let script = """
        \\set slot random(:slot_lo, :slot_hi)
        \\set usr random(:user_lo, :user_hi)
        \\set r random(1, 9000000000000000000)
        BEGIN;
        INSERT INTO inbox (message_key, kind, outcome) VALUES ('pgb:' || :r, 'booking', 'pending') ON CONFLICT (message_key) DO NOTHING;
        SELECT telegram_chat_id FROM users WHERE id = :usr FOR UPDATE;
        SELECT id, is_open FROM time_slots WHERE id = ANY(ARRAY[:slot]::bigint[]) ORDER BY id FOR UPDATE;
        SELECT count(*) AS taken FROM interviews WHERE time_slot_id = :slot AND status = 'active' \\gset
        SELECT count(*) AS mine FROM interviews WHERE user_id = :usr AND status = 'active' \\gset
        \\if :taken = 0 and :mine = 0
        INSERT INTO interviews (user_id, time_slot_id, message_key) VALUES (:usr, :slot, 'pgb:' || :r) RETURNING id;
        \\endif
        UPDATE inbox SET outcome = 'done', processed_at = clock_timestamp() WHERE message_key = 'pgb:' || :r;
        INSERT INTO outbox (message_key, chat_id, method, payload) VALUES ('pgb:' || :r, :usr, 'sendMessage', jsonb_build_object('chat_id', :usr, 'text', 'pgbench'));
        COMMIT;

        """

    /// Runs `transactions` booking transactions from `clients` connections over the slot and user
    /// ID ranges given (fresh ones, created for this comparison).
    static func run(
        postgresURL: String, clients: Int, transactions: Int, slots: ClosedRange<Int64>, users: ClosedRange<Int64>,
        directory: URL
    ) async throws -> Result {
        let binary = try LocalStack.postgresBinaries().appendingPathComponent("pgbench")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw LoadTestError.pgbench("pgbench not found at \(binary.path)")
        }
        let scriptFile = directory.appendingPathComponent("booking.pgbench.sql")
        try script.write(to: scriptFile, atomically: true, encoding: .utf8)
        let perClient = max(1, transactions / clients)
        let threads = min(clients, ProcessInfo.processInfo.activeProcessorCount)
        let process = try ChildProcess(
            name: "pgbench", executable: binary,
            arguments: [
                "-n", "-f", scriptFile.path, "-c", String(clients), "-j", String(threads), "-t", String(perClient),
                "-D", "slot_lo=\(slots.lowerBound)", "-D", "slot_hi=\(slots.upperBound)",
                "-D", "user_lo=\(users.lowerBound)", "-D", "user_hi=\(users.upperBound)", postgresURL,
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
        return Result(transactions: perClient * clients, tps: tps, clients: clients)
    }
}
