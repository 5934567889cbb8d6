import Synchronization

/// Measures how late this process's timers fire, for timing assertions that must not blame the
/// code under test for a machine that did not run it.
///
/// When the whole package's tests run at once on two cores, every suite starting together (and
/// the system tests spawning processes) delays `Task.sleep` wake-ups by up to two seconds for a
/// few seconds — at any task priority, and with a dedicated task executor too (the wake-up passes
/// through the global queue). An elector whose renewal fires that late rightly steps down. So the
/// leader tests wait for calm first, then measure the worst lateness while they run: safety is
/// asserted unconditionally; timing bounds get the measured stall added; and "no spurious
/// step-down" is asserted only when the stall stayed below the renewal slack.
final class StallMonitor: Sendable {
    private final class Worst: Sendable {
        let value = Mutex(Duration.zero)
    }

    private static let tick = Duration.milliseconds(5)
    private let worst: Worst
    private let task: Task<Void, Never>

    /// Starts measuring, at the electors' priority.
    init() {
        let worst = Worst()
        self.worst = worst
        self.task = Task(priority: .high) {
            while !Task.isCancelled {
                let before = ContinuousClock.now
                try? await Task.sleep(for: Self.tick)
                let late = ContinuousClock.now - before - Self.tick
                worst.value.withLock { $0 = max($0, late) }
            }
        }
    }

    /// The latest any timer fired so far.
    var worstLateness: Duration { worst.value.withLock { $0 } }

    func stop() async {
        task.cancel()
        await task.value
    }

    /// Waits until timers have fired within `tolerance` for `quiet` in a row, or `timeout` passed.
    static func waitForCalm(
        tolerance: Duration = .milliseconds(30), quiet: Duration = .milliseconds(300), timeout: Duration = .seconds(30)
    ) async {
        let deadline = ContinuousClock.now + timeout
        var calmSince = ContinuousClock.now
        while ContinuousClock.now < deadline {
            let before = ContinuousClock.now
            try? await Task.sleep(for: tick)
            let after = ContinuousClock.now
            if after - before - tick > tolerance { calmSince = after }
            if after - calmSince >= quiet { return }
        }
    }
}
