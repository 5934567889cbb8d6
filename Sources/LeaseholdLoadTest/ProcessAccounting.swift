import Foundation
import LeaseholdCore
import LeaseholdRuntime
import NIOConcurrencyHelpers

/// Told when the load test's measured interval starts and ends: from the first request sent to
/// the last outcome committed (with `--ingress-only`: to the last answer). Seeding before and
/// verification and pgbench after fall outside it.
public protocol LoadTestMeasurement: Sendable {
    func intervalStarted() async
    func intervalEnded() async
}

/// CPU time and peak memory per role over the measured interval, for a caller that owns the
/// processes (`leasehold demo`).
///
/// CPU: `utime + stime` from `/proc/<pid>/stat` at the start and at the end (every thread of the
/// process, also those that exited). For a role with ``Role/includesChildren`` (PostgreSQL's
/// postmaster) also every live child's own time plus the parent's `cutime + cstime`, the time of
/// the children it has reaped: a backend that exits during the interval leaves the live set but
/// its whole time lands in the parent's children counters, so the difference between the two
/// samples is the interval's time either way. Memory: `VmRSS` from `/proc/<pid>/status` every
/// 250 ms during the interval, the largest value of any of the role's processes.
public final class ProcessAccounting: LoadTestMeasurement {
    /// One role's processes.
    public struct Role: Sendable {
        /// The key in the report: `ingress`, `worker`, `supervisor`, `postgresql`, `redis`, `loadgen`.
        public var name: String
        public var pids: [Int32]
        /// Count each process's children too (live ones, and those it reaped).
        public var includesChildren: Bool
        /// Sample the resident set size.
        public var sampleMemory: Bool

        public init(name: String, pids: [Int32], includesChildren: Bool = false, sampleMemory: Bool = true) {
            self.name = name
            self.pids = pids
            self.includesChildren = includesChildren
            self.sampleMemory = sampleMemory
        }
    }

    private struct State {
        var startTicks: [String: UInt64] = [:]
        var endTicks: [String: UInt64] = [:]
        var started: ContinuousClock.Instant?
        var ended: ContinuousClock.Instant?
        var peakRSS: [String: Int] = [:]
        var sampler: Task<Void, Never>?
    }

    public let roles: [Role]
    public let sampleInterval: Duration
    private let state = NIOLockedValueBox(State())

    public init(roles: [Role], sampleInterval: Duration = .milliseconds(250)) {
        self.roles = roles
        self.sampleInterval = sampleInterval
    }

    public func intervalStarted() async {
        let ticks = cpuTicks()
        let roles = self.roles
        let interval = sampleInterval
        let sampler = Task.detached { [self] in
            while !Task.isCancelled {
                self.sampleMemory(roles)
                try? await Task.sleep(for: interval)
            }
        }
        state.withLockedValue { state in
            state.startTicks = ticks
            state.started = .now
            state.sampler = sampler
        }
    }

    public func intervalEnded() async {
        let ticks = cpuTicks()
        let sampler = state.withLockedValue { state in
            state.endTicks = ticks
            state.ended = .now
            defer { state.sampler = nil }
            return state.sampler
        }
        sampler?.cancel()
        await sampler?.value
        sampleMemory(roles)
    }

    /// The usage over the interval, per `count` units of work (`basis` names them: committed
    /// outcomes, or accepted requests); `nil` before the interval ended.
    public func usage(count: Int, basis: String) -> ProcessUsage? {
        let state = state.withLockedValue { $0 }
        guard let started = state.started, let ended = state.ended else { return nil }
        let seconds = max(0.001, started.duration(to: ended).seconds)
        var usage = ProcessUsage(
            intervalSeconds: LoadTest.rounded(seconds), count: count, basis: basis, roles: [:], totalCpuSeconds: 0,
            totalCores: 0, totalCpuMsPerBooking: nil)
        var total = 0.0
        for role in roles {
            let ticks = (state.endTicks[role.name] ?? 0).subtractingReportingOverflow(state.startTicks[role.name] ?? 0)
            let cpu = ticks.overflow ? 0 : Double(ticks.partialValue) / ProcessStat.ticksPerSecond
            total += cpu
            usage.roles[role.name] = ProcessUsage.Role(
                processes: role.pids.count, cpuSeconds: LoadTest.rounded(cpu), cores: Self.hundredths(cpu / seconds),
                cpuMsPerBooking: Self.perUnit(cpu, count),
                peakRssMiB: state.peakRSS[role.name].map { Self.hundredths(Double($0) / 1_048_576) })
        }
        usage.totalCpuSeconds = LoadTest.rounded(total)
        usage.totalCores = Self.hundredths(total / seconds)
        usage.totalCpuMsPerBooking = Self.perUnit(total, count)
        return usage
    }

    private static func perUnit(_ cpuSeconds: Double, _ count: Int) -> Double? {
        count > 0 ? (cpuSeconds * 1000 / Double(count) * 1000).rounded() / 1000 : nil
    }

    private static func hundredths(_ value: Double) -> Double { (value * 100).rounded() / 100 }

    /// Every role's CPU time right now, in ticks.
    private func cpuTicks() -> [String: UInt64] {
        var ticks: [String: UInt64] = [:]
        for role in roles {
            var sum: UInt64 = 0
            for pid in role.pids {
                guard let stat = ProcessStat.read(pid: pid) else { continue }
                sum += stat.ownTicks
                if role.includesChildren {
                    sum += stat.childrenTicks
                    sum += ProcessStat.children(of: pid).reduce(0) { $0 + $1.ownTicks }
                }
            }
            ticks[role.name] = sum
        }
        return ticks
    }

    private func sampleMemory(_ roles: [Role]) {
        var sample: [String: Int] = [:]
        for role in roles where role.sampleMemory {
            for pid in role.pids {
                if let bytes = residentSetBytes(pid: pid) { sample[role.name] = max(sample[role.name] ?? 0, bytes) }
            }
        }
        state.withLockedValue { state in
            state.peakRSS.merge(sample) { max($0, $1) }
        }
    }
}

/// CPU time and peak memory per role over the load test's measured interval (the demo's
/// process accounting).
public struct ProcessUsage: Sendable, Codable, Equatable {
    public struct Role: Sendable, Codable, Equatable {
        /// Processes of the role (for PostgreSQL: the postmaster; its backends are counted in it).
        public var processes: Int
        /// CPU time (user + system) spent in the interval.
        public var cpuSeconds: Double
        /// `cpuSeconds` / interval: how many cores the role kept busy on average.
        public var cores: Double
        /// CPU milliseconds per unit of work (``ProcessUsage/basis``); `nil` when there was none.
        public var cpuMsPerBooking: Double?
        /// The largest resident set size any of the role's processes reached (sampled every
        /// 250 ms), in MiB; `nil` when not sampled.
        public var peakRssMiB: Double?
    }

    /// The measured interval: first request sent → last outcome committed (ingress-only: → last answer).
    public var intervalSeconds: Double
    /// The units of work CPU time is divided by.
    public var count: Int
    /// What ``count`` counts: `committed outcomes`, or `accepted requests` with `--ingress-only`.
    public var basis: String
    /// By role: `ingress`, `worker`, `supervisor`, `postgresql`, `redis`, `loadgen` (the demo itself:
    /// the load generator); a role that did not run is absent.
    public var roles: [String: Role]
    public var totalCpuSeconds: Double
    public var totalCores: Double
    public var totalCpuMsPerBooking: Double?

    /// ``basis`` of a run that waited for outcomes.
    public static let committedOutcomes = "committed outcomes"
    /// ``basis`` of an `--ingress-only` run.
    public static let acceptedRequests = "accepted requests"

    /// The order the table lists roles in.
    static let order = ["ingress", "worker", "supervisor", "postgresql", "redis", "loadgen"]

    static func label(_ role: String) -> String {
        switch role {
        case "postgresql": "PostgreSQL (postmaster + backends)"
        case "redis": "Redis"
        case "loadgen": "load generator (demo)"
        default: role
        }
    }
}
