import Foundation
import LeaseholdLocalStack
import Synchronization

/// SIGINT and SIGTERM while the demo runs: by default they stop every process the demo started
/// and end it (exit 128 + the signal); while ``next()`` waits (`--keep-running`), the signal just
/// ends the wait.
final class DemoSignals: Sendable {
    /// What to do on a signal: gets the signal and the demo's roles (`nil` before they exist).
    typealias Interrupt = @Sendable (Int32, RoleProcesses?) async -> Void

    private struct State {
        var roles: RoleProcesses?
        var interrupt: Interrupt?
        var waiting: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())
    /// Set once in `init`, never changed: kept only so the sources live as long as this object.
    nonisolated(unsafe) private var sources: [any DispatchSourceSignal] = []

    init() {
        let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { [weak self] in self?.received(number) }
            source.resume()
            return source
        }
        self.sources = sources
    }

    /// What to do on a signal when nobody waits in ``next()``.
    func onInterrupt(_ interrupt: @escaping Interrupt) {
        state.withLock { $0.interrupt = interrupt }
    }

    /// The processes to stop on a signal: those started so far and any started later.
    func track(_ roles: RoleProcesses) {
        state.withLock { $0.roles = roles }
    }

    /// Waits for SIGINT or SIGTERM.
    func next() async {
        await withCheckedContinuation { continuation in
            state.withLock { $0.waiting = continuation }
        }
    }

    private func received(_ number: Int32) {
        let (waiting, interrupt, roles) = state.withLock { state in
            defer { state.waiting = nil }
            return (state.waiting, state.interrupt, state.roles)
        }
        if let waiting {
            waiting.resume()
        } else if let interrupt {
            Task { await interrupt(number, roles) }
        }
    }
}
