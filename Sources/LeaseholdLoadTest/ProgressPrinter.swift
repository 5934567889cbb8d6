import Foundation
import NIOConcurrencyHelpers

/// Shows the load test's progress line on standard error, so standard output stays clean for
/// `--json`.
///
/// On a terminal the line is rewritten in place (`\r`, erase to end of line) at every update; in
/// a log (CI, a file, a pipe) a plain line is printed at most every `plainInterval`, plus the
/// last one, so logs stay short. Notes (phase changes) always get a line of their own.
public final class ProgressPrinter: Sendable {
    private struct State {
        var lastPlain: ContinuousClock.Instant?
        var pending: String?
        var lineOpen = false
    }

    public let interactive: Bool
    public let plainInterval: Duration
    private let state = NIOLockedValueBox(State())

    /// - Parameters:
    ///   - interactive: rewrite one line in place; default: whether standard error is a terminal.
    ///   - plainInterval: the least time between two plain lines when not interactive.
    public init(interactive: Bool = isatty(STDERR_FILENO) == 1, plainInterval: Duration = .seconds(5)) {
        self.interactive = interactive
        self.plainInterval = plainInterval
    }

    /// A new progress line.
    public func update(_ line: String) {
        let text: String? = state.withLockedValue { state in
            if interactive {
                state.lineOpen = true
                return "\r\u{1B}[K" + line
            }
            let now = ContinuousClock.now
            if let last = state.lastPlain, last.duration(to: now) < plainInterval {
                state.pending = line
                return nil
            }
            state.lastPlain = now
            state.pending = nil
            return line + "\n"
        }
        if let text { write(text) }
    }

    /// A line of its own (a phase change, a warning); the progress line continues below it.
    public func note(_ text: String) {
        let output: String = state.withLockedValue { state in
            var output = ""
            if interactive, state.lineOpen {
                output += "\n"
                state.lineOpen = false
            } else if let pending = state.pending {
                output += pending + "\n"
                state.pending = nil
                state.lastPlain = .now
            }
            return output + text + "\n"
        }
        write(output)
    }

    /// Ends the progress display: the last line stays visible.
    public func finish() {
        let output: String = state.withLockedValue { state in
            defer {
                state.lineOpen = false
                state.pending = nil
            }
            if interactive { return state.lineOpen ? "\n" : "" }
            return state.pending.map { $0 + "\n" } ?? ""
        }
        if !output.isEmpty { write(output) }
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
