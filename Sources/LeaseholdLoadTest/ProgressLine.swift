import LeaseholdCore
import NIOConcurrencyHelpers

/// The live progress line: sent, accepted, completed, failed, and the current rates (over the
/// last update, not the average since the start).
struct ProgressLine {
    private var last: (at: ContinuousClock.Instant, sent: Int, completed: Int)
    private let started: ContinuousClock.Instant

    init(started: ContinuousClock.Instant) {
        self.started = started
        self.last = (started, 0, 0)
    }

    /// The next line; `phase` says what is happening ("sending", "waiting for outcomes").
    mutating func next(phase: String, sent: Int, accepted: Int, completed: Int, failed: Int) -> String {
        let now = ContinuousClock.now
        let interval = max(0.001, last.at.duration(to: now).seconds)
        let sendRate = Int((Double(sent - last.sent) / interval).rounded())
        let completionRate = Int((Double(completed - last.completed) / interval).rounded())
        last = (now, sent, completed)
        let elapsed = Int(started.duration(to: now).seconds)
        return "\(phase)  sent \(sent) (\(sendRate)/s)  accepted \(accepted)  completed \(completed) "
            + "(\(completionRate)/s)  not accepted \(failed)  \(elapsed)s"
    }
}

/// The progress line, shared by the progress task and the wait loop.
final class ProgressLineBox: Sendable {
    private let line: NIOLockedValueBox<ProgressLine>

    init(_ line: ProgressLine) {
        self.line = NIOLockedValueBox(line)
    }

    var value: ProgressLine { line.withLockedValue { $0 } }

    func next(phase: String, sent: Int, accepted: Int, completed: Int, failed: Int) -> String {
        line.withLockedValue {
            $0.next(phase: phase, sent: sent, accepted: accepted, completed: completed, failed: failed)
        }
    }
}
