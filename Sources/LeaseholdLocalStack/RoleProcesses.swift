import Foundation
import Synchronization

/// The role processes of a system on one machine (`leasehold ingress`, `worker`, `supervisor`,
/// `notifier` as children of the demo or of a test), by name: starts each with a shared
/// environment, starts one again with what it started with (a fault killed it), says which have
/// exited, waits until they answer, and stops them all.
///
/// Names are unique among the processes tracked: a role started again under its name replaces
/// the one that exited (and takes its place in ``all``). Once ``stopAll(timeout:)`` has begun,
/// nothing starts any more, so a restart racing a shutdown cannot leave a process behind.
public final class RoleProcesses: Sendable {
    /// What it takes to start one process (and to start it again).
    public struct Spec: Sendable {
        /// Unique among the tracked processes, with the role first (`worker-0`, `ingress-1`).
        public var name: String
        /// The arguments after the executable (`["worker"]`, `["ingress", "--port", "8081"]`).
        public var arguments: [String]
        /// Where stdout and stderr go; appended to, also by a restart.
        public var log: URL
        /// Set for this process only, over the shared environment (e.g. a worker's metrics port).
        public var environment: [String: String]

        public init(name: String, arguments: [String], log: URL, environment: [String: String] = [:]) {
            self.name = name
            self.arguments = arguments
            self.log = log
            self.environment = environment
        }
    }

    private struct State {
        var processes: [(spec: Spec, process: ChildProcess)] = []
        var stopping = false
    }

    /// The executable every process runs (the `leasehold` binary).
    public let executable: URL
    private let environment: [String: String]
    private let state = Mutex(State())

    /// - Parameters:
    ///   - executable: what every process runs.
    ///   - environment: the whole environment of every process (nothing is inherited beyond it),
    ///     under each ``Spec/environment``.
    public init(executable: URL, environment: [String: String]) {
        self.executable = executable
        self.environment = environment
    }

    /// Every process, in start order (a restarted one where it first started).
    public var all: [ChildProcess] { state.withLock { $0.processes.map(\.process) } }

    /// The processes whose name starts with `prefix` (`worker-`, `ingress-`, `supervisor`), in
    /// start order.
    public func named(_ prefix: String) -> [ChildProcess] { all.filter { $0.name.hasPrefix(prefix) } }

    /// The processes that have exited (whatever the reason: a crash, a signal, their own end).
    public var exited: [ChildProcess] { all.filter { !$0.isRunning } }

    /// Starts a process. Throws when another process of that name still runs, when
    /// ``stopAll(timeout:)`` has begun, or when the executable cannot be started.
    ///
    /// - Parameter freshLog: begin the log anew rather than append to what is there (a test's
    ///   process, whose log is its own); ``restart(_:)`` always appends.
    @discardableResult
    public func start(_ spec: Spec, freshLog: Bool = false) throws -> ChildProcess {
        // The check and the spawn under one lock: two starts of one name cannot both pass.
        try state.withLock { state in
            guard !state.stopping else { throw RoleProcessError.stopping(name: spec.name) }
            let index = state.processes.firstIndex { $0.spec.name == spec.name }
            if let index, state.processes[index].process.isRunning {
                throw RoleProcessError.alreadyRunning(name: spec.name)
            }
            if freshLog { try? FileManager.default.removeItem(at: spec.log) }
            let process = try ChildProcess(
                name: spec.name, executable: executable, arguments: spec.arguments, log: spec.log,
                environment: environment.merging(spec.environment) { _, own in own })
            if let index {
                state.processes[index] = (spec, process)
            } else {
                state.processes.append((spec, process))
            }
            return process
        }
    }

    /// Starts `name` again with what it was started with, once it has exited (died or was
    /// killed); its log is appended to. `nil` when no process has that name.
    @discardableResult
    public func restart(_ name: String) throws -> ChildProcess? {
        guard let spec = state.withLock({ $0.processes.first { $0.spec.name == name }?.spec }) else { return nil }
        return try start(spec)
    }

    /// Throws ``RoleProcessError/exitedEarly(name:status:log:tail:)`` for the first process that
    /// has exited: for a caller waiting on processes that should all be running.
    public func failIfAnyExited() throws {
        guard let process = exited.first else { return }
        throw RoleProcessError.exitedEarly(
            name: process.name, status: process.exitStatus ?? -1, log: process.log,
            tail: String(process.output.suffix(2000)))
    }

    /// Waits until every URL answers 200 to `GET` (asked through `status`, which returns the
    /// HTTP status or throws when nothing answers), one after the other, polling every 50 ms.
    ///
    /// Throws when a process exits meanwhile (``failIfAnyExited()``) or when `deadline` passes
    /// first (``RoleProcessError/neverAnswered(url:)``).
    public func waitUntilAnswering(
        _ urls: [String], until deadline: ContinuousClock.Instant = .now + .seconds(60),
        status: (String) async throws -> Int
    ) async throws {
        for url in urls {
            while true {
                if (try? await status(url)) == 200 { break }
                try failIfAnyExited()
                guard ContinuousClock.now < deadline else { throw RoleProcessError.neverAnswered(url: url) }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Waits until each of `processes` has written `text` to its log (a role's "started" line).
    ///
    /// Throws when any tracked process exits meanwhile (``failIfAnyExited()``) or when `deadline`
    /// passes first (``RoleProcessError/silent(name:text:log:)``).
    public func waitForOutput(
        _ text: String, from processes: [ChildProcess], until deadline: ContinuousClock.Instant = .now + .seconds(60)
    ) async throws {
        for process in processes {
            while !process.output.contains(text) {
                try failIfAnyExited()
                guard ContinuousClock.now < deadline else {
                    throw RoleProcessError.silent(name: process.name, text: text, log: process.log)
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Sends `signal` to every running process and returns at once.
    public func signalAll(_ signal: Int32) {
        for process in all { process.send(signal) }
    }

    /// Stops every process: SIGTERM to all at once (each drains on its own), then waits until
    /// `timeout` has passed for them all, SIGKILLs those still running and waits for them (10 s
    /// at most, as ``ChildProcess/stop(signal:timeout:)``). Nothing starts after this has begun.
    ///
    /// - Returns: each process's exit status by name (128 + the signal for one ended by a signal;
    ///   -1 for one that could not be reaped).
    @discardableResult
    public func stopAll(timeout: Duration = .seconds(30)) async -> [String: Int32] {
        let processes = state.withLock { state in
            state.stopping = true
            return state.processes.map(\.process)
        }
        for process in processes { process.send(SIGTERM) }
        let deadline = ContinuousClock.now + timeout
        var statuses: [String: Int32] = [:]
        for process in processes {
            if await !process.waitForExit(timeout: max(.zero, deadline - .now)) {
                process.send(SIGKILL)
                _ = await process.waitForExit(timeout: .seconds(10))
            }
            statuses[process.name] = process.exitStatus ?? -1
        }
        return statuses
    }
}

/// Why ``RoleProcesses`` could not start a process or wait for one.
public enum RoleProcessError: Error, Equatable, CustomStringConvertible {
    /// A process of that name is still running.
    case alreadyRunning(name: String)
    /// ``RoleProcesses/stopAll(timeout:)`` has begun.
    case stopping(name: String)
    /// A process exited while its caller waited for the processes; `tail` is the end of its log.
    case exitedEarly(name: String, status: Int32, log: URL, tail: String)
    /// `url` never answered 200 before the deadline.
    case neverAnswered(url: String)
    /// A process did not write `text` before the deadline.
    case silent(name: String, text: String, log: URL)

    public var description: String {
        switch self {
        case .alreadyRunning(let name): "a process named \(name) is already running"
        case .stopping(let name): "not starting \(name): the processes are being stopped"
        case .exitedEarly(let name, _, let log, let tail): "\(name) exited early; see \(log.path):\n\(tail)"
        case .neverAnswered(let url): "\(url) never answered 200"
        case .silent(let name, let text, let log): "\(name) never wrote \"\(text)\"; see \(log.path)"
        }
    }
}
