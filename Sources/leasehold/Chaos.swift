import Foundation
import LeaseholdLoadTest
import LeaseholdOps
import LeaseholdPostgres
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

    /// The processes whose name starts with `prefix` (`worker-`, `ingress-`, `supervisor-`).
    func named(_ prefix: String) -> [ChildProcess] { all.filter { $0.name.hasPrefix(prefix) } }

    func start(_ spec: Spec) throws {
        let process = try ChildProcess(
            name: spec.name, executable: executable, arguments: spec.arguments, log: spec.log, environment: environment)
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
        defer { Task { await client.close() } }
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
    /// checks that and that nothing was dead-lettered.
    static func run(
        redisURL: String, prefix: String, postgresURL: String, timeout: Duration
    ) async throws -> [Check] {
        let redis = RedisClient(configuration: try RedisConfiguration(url: redisURL), size: 1)
        let postgres = PostgresClient(configuration: PostgresConfiguration(connectionString: postgresURL), size: 1)
        defer {
            Task {
                await redis.close()
                await postgres.close()
            }
        }
        let streams = ["telegram", "yookassa", "bookings"].map { "\(prefix)stream:\($0)" }
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
            let retries = Int(try await redis.send("ZCARD", prefix + "retry").int ?? 0)
            return (pending, lag, retries)
        }
        let deadline = ContinuousClock.now + timeout
        var state = try await unsettled()
        while state != (0, 0, 0) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
            state = try await unsettled()
        }
        let deadLetters = try await postgres.query("SELECT count(*) FROM dead_letters").single().decode(
            Int64.self, at: 0)
        return [
            Check(
                name: "nothing pending or undelivered in the streams", passed: state.pending == 0 && state.lag == 0,
                detail: "\(state.pending) pending, \(state.lag) undelivered"),
            Check(
                name: "nothing left in the retry schedule", passed: state.retries == 0,
                detail: "\(state.retries) scheduled"),
            Check(
                name: "no dead letters (the run sends no poison message)", passed: deadLetters == 0,
                detail: "\(deadLetters) dead-lettered"),
        ]
    }
}
