import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization

/// Puts the process's own figures and its readiness on the role's `/metrics`, refreshed every
/// ``interval``, so a dashboard shows CPU and memory per role and an alert sees a role that is up
/// but not ready (Prometheus' `up` only says the scrape answered):
///
/// - `process_cpu_seconds_total`: user + system CPU time of every thread, in seconds (a counter, so
///   `rate(…[1m])` is the cores the role keeps busy);
/// - `process_resident_memory_bytes`: the resident set (`VmRSS`);
/// - `process_open_fds`: open file descriptors (connections included);
/// - `process_start_time_seconds`: when the process started, in seconds since the epoch;
/// - `leasehold_ready`: 1 when the role's readiness check (the one `/readyz` answers with) passed
///   at the last refresh, 0 when it failed or has not answered within ``readinessTimeout``;
/// - `leasehold_dependency_up{dependency="postgres"|"redis"}`: 1 when the role's own check of that
///   server (`SELECT 1`, `PING`) answered at the last refresh, 0 when it failed or has not answered
///   within ``readinessTimeout``, so an alert names the server a role cannot reach (readiness
///   only says that something is wrong).
///
/// The names and meanings are those of the Prometheus client libraries' process collectors, so
/// existing dashboards and rules for them apply. Figures are read from `/proc/self` (Linux).
public struct ProcessMetrics: Service {
    public let registry: PrometheusCollectorRegistry
    public let interval: Duration
    public let readinessTimeout: Duration
    private let ready: (@Sendable () async -> Bool)?
    private let dependencies: [Dependency]

    /// A server the role depends on, checked at every refresh for `leasehold_dependency_up`.
    public struct Dependency: Sendable {
        /// The `dependency` label: `postgres` or `redis`.
        public let name: String
        /// Whether the server answers (a `SELECT 1`, a `PING`), through the role's own client.
        public let check: @Sendable () async -> Bool

        public init(_ name: String, check: @escaping @Sendable () async -> Bool) {
            self.name = name
            self.check = check
        }
    }

    /// - Parameters:
    ///   - dependencies: the servers the role uses, each with its check (`leasehold_dependency_up`).
    ///   - ready: the role's readiness check; `nil` for a role without one (no `leasehold_ready` then).
    public init(
        registry: PrometheusCollectorRegistry, interval: Duration = .seconds(5),
        readinessTimeout: Duration = .seconds(2), dependencies: [Dependency] = [],
        ready: (@Sendable () async -> Bool)?
    ) {
        self.registry = registry
        self.interval = interval
        self.readinessTimeout = readinessTimeout
        self.dependencies = dependencies
        self.ready = ready
    }

    public func run() async throws {
        let cpu = registry.makeCounter(name: "process_cpu_seconds_total", help: "User and system CPU time, seconds.")
        let resident = registry.makeGauge(name: "process_resident_memory_bytes", help: "Resident memory, bytes.")
        let descriptors = registry.makeGauge(name: "process_open_fds", help: "Open file descriptors.")
        let start = registry.makeGauge(name: "process_start_time_seconds", help: "Start time, seconds since the epoch.")
        // Set before the gauges below exist: whoever sees them on the page sees the start time too.
        if let started = Self.startTime() { start.set(started) }
        let reachable = dependencies.map { dependency in
            registry.makeGauge(
                name: "leasehold_dependency_up",
                labels: [("dependency", dependency.name)],
                help: "1 when the role's own check of the server (SELECT 1, PING) answered.")
        }
        let readiness =
            ready == nil
            ? nil : registry.makeGauge(name: "leasehold_ready", help: "1 when the role's readiness check passed.")
        let (ready, interval, readinessTimeout, dependencies) = (ready, interval, readinessTimeout, dependencies)
        // Ends at once on the graceful shutdown: a ServiceGroup stops its services one after
        // another, so a refresher that slept out its interval would hold back the role's drain.
        await cancelWhenGracefulShutdown {
            var countedTicks: UInt64 = 0
            // The checks in flight, each left running when it outlasts its timeout (see answer(of:within:)).
            var check: Task<Bool, Never>?
            var dependencyChecks = [Task<Bool, Never>?](repeating: nil, count: dependencies.count)
            while !Task.isCancelled {
                if let stat = ProcessStat.current(), stat.ownTicks > countedTicks {
                    cpu.increment(by: Double(stat.ownTicks - countedTicks) / ProcessStat.ticksPerSecond)
                    countedTicks = stat.ownTicks
                }
                if let bytes = residentSetBytes(pid: getpid()) { resident.set(Int64(bytes)) }
                if let count = Self.openDescriptors() { descriptors.set(Int64(count)) }
                if let ready, let readiness {
                    let running = check ?? Task { await ready() }
                    let answer = await Self.answer(of: running, within: readinessTimeout)
                    check = answer == nil ? running : nil
                    readiness.set(Int64(answer == true ? 1 : 0))
                }
                for (index, dependency) in dependencies.enumerated() {
                    let running = dependencyChecks[index] ?? Task { await dependency.check() }
                    let answer = await Self.answer(of: running, within: readinessTimeout)
                    dependencyChecks[index] = answer == nil ? running : nil
                    reachable[index].set(Int64(answer == true ? 1 : 0))
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// `check`'s answer, or `nil` when it has not answered within `timeout`. The check itself is
    /// never cancelled, only no longer waited for: cancelling it could cancel work others share
    /// (a client's connection being opened, which every caller waiting for it would then lose).
    /// A check that has not answered is waited for again at the next refresh instead of starting
    /// another, so a hung dependency costs one check, not one per refresh.
    static func answer(of check: Task<Bool, Never>, within timeout: Duration) async -> Bool? {
        // Not a task group: a group waits for its children, and waiting for `check.value` cannot
        // be cancelled; two unstructured tasks race to resume instead, the first one wins.
        await withCheckedContinuation { continuation in
            let first = FirstAnswer(continuation)
            Task { first.resume(await check.value) }
            Task {
                try? await Task.sleep(for: timeout)
                first.resume(nil)
            }
        }
    }

    /// The number of entries in `/proc/self/fd` (less the one the listing itself holds open).
    static func openDescriptors() -> Int? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return nil }
        return max(0, entries.count - 1)
    }

    /// The process's start: the boot time (`btime` in `/proc/stat`) plus `starttime` (field 22 of
    /// `/proc/self/stat`, in clock ticks since boot).
    static func startTime() -> Double? {
        guard let stat = readSmallFile("/proc/self/stat"),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19, let ticks = Double(fields[19]),
            let system = readSmallFile("/proc/stat"),
            let line = system.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let boot = Double(line.dropFirst("btime ".count).trimmingCharacters(in: .whitespaces))
        else { return nil }
        return boot + ticks / ProcessStat.ticksPerSecond
    }
}

/// Resumes a continuation with the first answer it is given and ignores the rest.
private final class FirstAnswer: Sendable {
    private let continuation: Mutex<CheckedContinuation<Bool?, Never>?>

    init(_ continuation: CheckedContinuation<Bool?, Never>) {
        self.continuation = Mutex(continuation)
    }

    func resume(_ answer: Bool?) {
        continuation.withLock { waiting in
            waiting?.resume(returning: answer)
            waiting = nil
        }
    }
}
