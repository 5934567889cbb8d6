import Foundation
import LeaseholdCore
import LeaseholdLocalStack
import LeaseholdQueue
import LeaseholdRedis

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
    let roles: RoleProcesses
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
