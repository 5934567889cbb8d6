import Foundation
import LeaseholdCore
import LeaseholdLoadTest
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import Synchronization

/// The processes a demo runs, by name, with what it takes to start each again: a fault may kill
/// one, and the chaos schedule then starts it anew with the same arguments (an ingress on the same
/// port, so the load generator's URLs stay valid).
final class DemoRoles: Sendable {
    struct Spec: Sendable {
        var name: String
        var arguments: [String]
        var log: URL
        /// Set for this process only, over the shared environment (e.g. a worker's metrics port).
        var environment: [String: String] = [:]
    }

    private let executable: URL
    private let environment: [String: String]
    private let state = Mutex<[(spec: Spec, process: ChildProcess)]>([])
    private let changed: @Sendable ([ChildProcess]) -> Void

    /// - Parameter changed: called with every process after each start (the signal handler's list).
    init(executable: URL, environment: [String: String], changed: @escaping @Sendable ([ChildProcess]) -> Void) {
        self.executable = executable
        self.environment = environment
        self.changed = changed
    }

    /// Every process, in start order.
    var all: [ChildProcess] { state.withLock { $0.map(\.process) } }

    /// The processes whose name starts with `prefix` (`worker-`, `ingress-`, `supervisor-`,
    /// `notifier-`).
    func named(_ prefix: String) -> [ChildProcess] { all.filter { $0.name.hasPrefix(prefix) } }

    func start(_ spec: Spec) throws {
        let process = try ChildProcess(
            name: spec.name, executable: executable, arguments: spec.arguments, log: spec.log,
            environment: environment.merging(spec.environment) { _, own in own })
        let all = state.withLock { roles -> [ChildProcess] in
            if let index = roles.firstIndex(where: { $0.spec.name == spec.name }) {
                roles[index] = (spec, process)
            } else {
                roles.append((spec, process))
            }
            return roles.map(\.process)
        }
        changed(all)
    }

    /// Starts `name` again (after it died or was killed); its log is appended to.
    func restart(_ name: String) throws {
        guard let spec = state.withLock({ $0.first { $0.spec.name == name }?.spec }) else { return }
        try start(spec)
    }
}

/// One fault the chaos schedule applies.
enum Fault: String, CaseIterable, Sendable {
    case killWorker = "kill -9 of a worker"
    case killIngress = "kill -9 of an ingress"
    case killLeader = "kill -9 of the supervisor leader"
    case killNotifier = "kill -9 of a notifier"
    case pauseWorker = "SIGSTOP of a worker past the lease TTL and the visibility timeout"
    case killRedis = "kill -9 of Redis, restarted on the same append-only file"
    case crashPostgres = "PostgreSQL immediate shutdown, then a restart"
    case restartEverything = "kill -9 of every role at once, then a restart"
}

/// What happened, for the progress line and the report.
struct FaultRecord: Sendable {
    var at: Duration
    var fault: Fault
    var detail: String
}

/// Applies faults at random moments (reproducible from the seed) while the load runs.
struct ChaosSchedule: Sendable {
    /// The settings the roles run with under chaos, so that a paused or killed worker's entries
    /// come back within seconds rather than minutes.
    static let environment: [String: String] = [
        "LEASEHOLD_LEASE_TTL_MS": "2000",
        "LEASEHOLD_VISIBILITY_TIMEOUT_MS": "4000",
        "LEASEHOLD_SUPERVISOR_INTERVAL_MS": "500",
        "LEASEHOLD_LEADER_TTL_MS": "3000",
        "LEASEHOLD_DRAIN_TIMEOUT_MS": "2000",
        "LEASEHOLD_RETRY_BASE_MS": "200",
        "LEASEHOLD_RETRY_MAX_DELAY_MS": "2000",
        "LEASEHOLD_RETRY_MAX_ATTEMPTS": "50",
        // The chaos run posts YooKassa notifications from this machine.
        "LEASEHOLD_YOOKASSA_ALLOWED_CIDRS": "127.0.0.1/32,::1",
        // The notifiers send to the local fake Bot API, which has no rate limit: the bot-wide limit
        // is raised above the run's rate, and a killed notifier's claims come back within seconds.
        "LEASEHOLD_NOTIFIER_RATE": "1000",
        "LEASEHOLD_NOTIFIER_REQUEST_TIMEOUT_MS": "2000",
        "LEASEHOLD_NOTIFIER_CLAIM_TIMEOUT_MS": "4000",
        "LEASEHOLD_NOTIFIER_RETRY_BASE_MS": "200",
        "LEASEHOLD_NOTIFIER_RETRY_MAX_DELAY_MS": "2000",
        "LEASEHOLD_NOTIFIER_MAX_ATTEMPTS": "50",
    ]

    let seed: UInt64
    /// Time between faults: uniformly random in this range.
    let spacing: ClosedRange<Double>
    let roles: DemoRoles
    let stack: LocalStack
    let redisURL: String
    let redisPrefix: String
    let say: @Sendable (String) -> Void

    /// Runs faults until `deadline`; returns what it did. Every fault is undone before the next
    /// (the role restarted, the server back), and before this returns.
    func run(until deadline: ContinuousClock.Instant) async -> [FaultRecord] {
        var random = SeededGenerator(seed: seed)
        let start = ContinuousClock.now
        var records: [FaultRecord] = []
        while true {
            let pause = Duration.milliseconds(Int(Double.random(in: spacing, using: &random) * 1000))
            guard ContinuousClock.now + pause < deadline else { break }
            try? await Task.sleep(for: pause)
            let fault = Fault.allCases.randomElement(using: &random)!
            let pick = Int.random(in: 0..<1_000, using: &random)
            let at = ContinuousClock.now - start
            let detail: String
            do {
                detail = try await apply(fault, pick: pick)
            } catch {
                detail = "failed to apply: \(error)"
            }
            say("chaos +\(Int(at.components.seconds)) s: \(fault.rawValue): \(detail)")
            records.append(FaultRecord(at: at, fault: fault, detail: detail))
        }
        return records
    }

    private func apply(_ fault: Fault, pick: Int) async throws -> String {
        switch fault {
        case .killWorker:
            return try await killAndRestart(prefix: "worker-", pick: pick)
        case .killIngress:
            return try await killAndRestart(prefix: "ingress-", pick: pick)
        case .killNotifier:
            return try await killAndRestart(prefix: "notifier-", pick: pick)
        case .killLeader:
            let leader = try await leaderProcess()
            let victim = leader ?? roles.named("supervisor-").first
            guard let victim else { return "no supervisor" }
            victim.send(SIGKILL)
            await victim.stop(signal: SIGKILL, timeout: .seconds(5))
            try await Task.sleep(for: .seconds(1))
            try roles.restart(victim.name)
            return
                "\(victim.name) (pid \(victim.pid)\(leader == nil ? ", leader unknown" : ", the leader")) killed, restarted"
        case .pauseWorker:
            let workers = roles.named("worker-")
            guard !workers.isEmpty else { return "no worker" }
            let victim = workers[pick % workers.count]
            victim.send(SIGSTOP)
            try await Task.sleep(for: .seconds(6))  // lease TTL 2 s, visibility timeout 4 s
            victim.send(SIGCONT)
            return "\(victim.name) (pid \(victim.pid)) stopped for 6 s, continued"
        case .killRedis:
            await stack.stopRedis(signal: SIGKILL)
            try await Task.sleep(for: .seconds(1))
            try await stack.startRedis()
            return "down about 1 s"
        case .crashPostgres:
            await stack.stopPostgres(signal: SIGQUIT)
            try await Task.sleep(for: .seconds(1))
            try await stack.startPostgres()
            return "down about 1 s, crash recovery on restart"
        case .restartEverything:
            let all = roles.all
            for process in all { process.send(SIGKILL) }
            for process in all { await process.stop(signal: SIGKILL, timeout: .seconds(5)) }
            try await Task.sleep(for: .seconds(1))
            for process in all { try roles.restart(process.name) }
            return "\(all.count) processes killed and restarted"
        }
    }

    private func killAndRestart(prefix: String, pick: Int) async throws -> String {
        let candidates = roles.named(prefix)
        guard !candidates.isEmpty else { return "none running" }
        let victim = candidates[pick % candidates.count]
        victim.send(SIGKILL)
        await victim.stop(signal: SIGKILL, timeout: .seconds(5))
        try await Task.sleep(for: .seconds(1))
        try roles.restart(victim.name)
        return "\(victim.name) (pid \(victim.pid)) killed, restarted after 1 s"
    }

    /// The supervisor holding the leader lease: its candidate ID is `<host>-<pid>-<random>`.
    private func leaderProcess() async throws -> ChildProcess? {
        let client = RedisClient(configuration: try RedisConfiguration(url: redisURL), size: 1)
        defer { client.close() }
        guard let holder = try await client.send("GET", redisPrefix + "leader").string else { return nil }
        let parts = holder.split(separator: "-")
        guard parts.count >= 3, let pid = Int32(parts[parts.count - 2]) else { return nil }
        return roles.named("supervisor-").first { $0.pid == pid }
    }
}

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

/// Messages no worker can ever process, sent on purpose during a chaos run: each must end as a
/// dead letter (once), whatever the faults, and be the only dead letters.
///
/// They go straight onto the bookings stream, as a producer with a bug would put them (ingress
/// validates what it accepts, so it cannot be made to enqueue one): kind `booking` with a payload
/// that is not a booking request, key `poison:<seed>-<n>`.
struct PoisonMessages: Sendable {
    let count: Int
    let seed: UInt64
    let redisURL: String
    let keys: RedisKeys

    /// Sends one message every `duration / count`, each retried until Redis takes it (Redis may be
    /// down for a fault); returns the keys sent. An XADD whose answer was lost may have added its
    /// entry, and the retry then adds a second one under the same key: both end as dead letters
    /// of the one key.
    func send(over duration: Duration) async -> Set<String> {
        let client: RedisClient
        do {
            client = RedisClient(configuration: try RedisConfiguration(url: redisURL), size: 1)
        } catch {
            return []
        }
        let stream = keys.stream("bookings")
        var sent = Set<String>()
        let spacing = duration / max(1, count + 1)
        for index in 1...max(1, count) {
            try? await Task.sleep(for: spacing)
            let entry = StreamEntry(
                stream: stream, key: "poison:\(seed)-\(index)", kind: "booking",
                payload: Array(#"{"poison":"not a booking request"}"#.utf8))
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                if (try? await client.send(RedisCommand(["XADD", stream, "*"] + entry.fields))) != nil {
                    sent.insert(entry.key)
                    break
                }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        client.close()
        return sent
    }
}
