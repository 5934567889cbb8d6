import Foundation
import LeaseholdLoadTest
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis

/// What must hold once a chaos run has settled, beyond the load test's own invariants.
struct ChaosChecks {
    typealias Check = PaymentChaosLoad.Check

    /// Waits (up to `timeout`) until nothing is pending, undelivered or scheduled for retry, then
    /// checks that, and that the dead letters since `since` (the run's start: an earlier run in the
    /// same data directory may have left its own) are exactly the `poison` messages the run sent.
    static func run(
        redisURL: String, keys: RedisKeys, postgresURL: String, poison: Set<String>, since: Date, timeout: Duration
    ) async throws -> [Check] {
        let redis = RedisClient(configuration: try RedisConfiguration(url: redisURL), size: 1)
        let postgres = PostgresClient(configuration: PostgresConfiguration(connectionString: postgresURL), size: 1)
        defer {
            Task {
                redis.close()
                await postgres.close()
            }
        }
        let streams = keys.streams(RedisKeys.sources)
        func unsettled() async throws -> (pending: Int, lag: Int, retries: Int) {
            var pending = 0
            var lag = 0
            for stream in streams {
                let groups = (try? await redis.send("XINFO", "GROUPS", stream))?.array ?? []
                for group in groups {
                    guard let fields = group.fieldMap, fields["name"]?.string == "workers" else { continue }
                    pending += Int(fields["pending"]?.int ?? 0)
                    lag += Int(fields["lag"]?.int ?? 0)
                }
            }
            let retries = try await RetryScheduler(keys: keys, streams: streams).backlog(via: redis)
            return (pending, lag, retries)
        }
        let deadline = ContinuousClock.now + timeout
        var state = try await unsettled()
        while state != (0, 0, 0) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
            state = try await unsettled()
        }
        var deadLettered = Set<String>()
        for row in try await postgres.query(
            "SELECT DISTINCT message_key FROM dead_letters WHERE dead_lettered_at >= to_timestamp(\(since.timeIntervalSince1970))"
        ) {
            deadLettered.insert(try row.decode(String.self, at: 0))
        }
        let unexpected = deadLettered.subtracting(poison).sorted()
        let missed = poison.subtracting(deadLettered).sorted()
        func sample(_ keys: [String]) -> String {
            keys.prefix(5).joined(separator: ", ") + (keys.count > 5 ? ", …" : "")
        }
        return [
            Check(
                name: "nothing pending or undelivered in the streams", passed: state.pending == 0 && state.lag == 0,
                detail: "\(state.pending) pending, \(state.lag) undelivered"),
            Check(
                name: "nothing left in the retry schedule", passed: state.retries == 0,
                detail: "\(state.retries) scheduled"),
            Check(
                name: "the dead letters are exactly the poison messages sent",
                passed: unexpected.isEmpty && missed.isEmpty,
                detail: "\(poison.count) poison messages sent, \(deadLettered.count) keys dead-lettered"
                    + (unexpected.isEmpty ? "" : "; not poison: \(sample(unexpected))")
                    + (missed.isEmpty ? "" : "; poison not dead-lettered: \(sample(missed))")),
        ]
    }
}

/// "Every Telegram user got exactly one reply": each request of the run that has an outcome
/// queued one reply in `outbox` (the booking transaction writes it to the user's chat, for API
/// requests too: the load test's users have one), every such row was delivered, and the fake Bot
/// API received exactly as many successful `sendMessage` calls per chat as the run queued for
/// that chat.
///
/// One exception is allowed, and counted apart: `sendMessage` has no idempotency key, so a
/// notifier that dies (or loses PostgreSQL for longer than the claim timeout) after Telegram
/// accepted a call and before it recorded `sent` leaves the row to be claimed again and sent a
/// second time (README, "Bot replies"). Every claim counts in `outbox.attempts`, so a row can
/// have been sent at most `attempts` times: a chat may receive more calls than it has rows only
/// by as many as its rows were claimed again. More than that would be a real double send, and
/// fails the check with the chats involved.
struct ReplyCheck {
    typealias Check = PaymentChaosLoad.Check

    static func run(
        report: LoadTestReport, api: FakeBotAPI, postgresURL: String, timeout: Duration
    ) async throws -> [Check] {
        let postgres = PostgresClient(configuration: PostgresConfiguration(connectionString: postgresURL), size: 1)
        defer { Task { await postgres.close() } }
        let keys = RequestPlan.keyPattern(run: report.run, input: LoadTestInput(rawValue: report.input) ?? .mixed)

        // Wait (bounded) until no reply of the run is still pending or being sent.
        func open() async throws -> Int {
            try await postgres.query(
                "SELECT count(*) FROM outbox WHERE message_key ~ \(keys) AND status IN ('pending', 'sending')"
            ).single().decode(Int.self, at: 0)
        }
        let deadline = ContinuousClock.now + timeout
        var stillOpen = try await open()
        while stillOpen > 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
            stillOpen = try await open()
        }
        // In-flight calls of the last claims have been answered by now; give their records a moment.
        try await Task.sleep(for: .milliseconds(500))

        let (processed, withoutReply) = try await postgres.query(
            """
            SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (
                SELECT 1 FROM outbox o WHERE o.message_key = i.message_key))
            FROM inbox i WHERE i.message_key ~ \(keys)
            """
        ).single().decode(Int.self, Int.self)
        // Per chat: rows queued, and claims beyond the first (each a chance of a second send).
        var queued: [Int64: (rows: Int, reclaims: Int)] = [:]
        var statuses: [String: Int] = [:]
        for row in try await postgres.query(
            "SELECT chat_id, status, attempts FROM outbox WHERE message_key ~ \(keys) AND chat_id IS NOT NULL")
        {
            let (chat, status, attempts) = try row.decode(Int64.self, String.self, Int.self)
            queued[chat, default: (0, 0)].rows += 1
            queued[chat, default: (0, 0)].reclaims += max(0, attempts - 1)
            statuses[status, default: 0] += 1
        }
        var delivered: [Int64: Int] = [:]
        for call in api.calls where call.method == "sendMessage" && call.status == 200 {
            guard let chat = call.chatID, queued[chat] != nil else { continue }
            delivered[chat, default: 0] += 1
        }
        var missing: [Int64] = []
        var resent = 0
        var unexplained: [Int64] = []
        for (chat, counts) in queued.sorted(by: { $0.key < $1.key }) {
            let calls = delivered[chat] ?? 0
            if calls < counts.rows {
                missing.append(chat)
            } else if calls > counts.rows + counts.reclaims {
                unexplained.append(chat)
            } else {
                resent += calls - counts.rows
            }
        }
        let rows = queued.values.map(\.rows).reduce(0, +)
        let reclaimed = queued.values.map(\.reclaims).reduce(0, +)
        let sent = statuses["sent", default: 0]
        func sample(_ chats: [Int64]) -> String {
            chats.prefix(5).map(String.init).joined(separator: ", ") + (chats.count > 5 ? ", …" : "")
        }
        return [
            Check(
                name: "every processed request queued one reply", passed: withoutReply == 0 && rows == processed,
                detail: "\(processed) requests processed, \(rows) replies queued"
                    + (withoutReply > 0 ? ", \(withoutReply) without one" : "")),
            Check(
                name: "every reply delivered", passed: sent == rows,
                detail: statuses.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")),
            Check(
                name: "every Telegram user got exactly one reply per request",
                passed: missing.isEmpty && unexplained.isEmpty,
                detail: "\(queued.count) chats, \(delivered.values.reduce(0, +)) replies received"
                    + (missing.isEmpty ? "" : "; \(missing.count) chats got fewer (e.g. chat \(sample(missing)))")
                    + (unexplained.isEmpty
                        ? ""
                        : "; \(unexplained.count) chats got more replies than their rows were claimed (e.g. chat \(sample(unexplained)))")
                    + (resent == 0
                        ? ""
                        : "; \(resent) sent twice, each on a row claimed again after its notifier was killed or stalled past the claim timeout (the documented window; \(reclaimed) claims again in all)")
            ),
        ]
    }
}
