import Foundation
import Metrics
import Synchronization

/// Where every role's log lines go: standard error, written by a thread of its own from a bounded
/// buffer, so that logging never blocks the thread that logs.
///
/// A plain `write(2)` to standard error blocks once the pipe behind it is full, which is what a
/// stalled log collector (Docker's logging driver, a `| tee` whose disk is slow, a terminal
/// scrolled back with Ctrl-S) does to it. swift-log's `StreamLogHandler` writes under one lock
/// for the whole process, so then every thread that logs stops, the reactor and the HTTP server's
/// event loops among them: measured, an ingress whose Redis was down (a warning per booking)
/// stopped answering bookings and `/healthz` after about 270 lines into a pipe nobody read.
///
/// Here a line is appended to a buffer of at most `capacity` bytes and the thread that logged
/// goes on; a line that does not fit is dropped and counted
/// (`leasehold_log_lines_dropped_total`), and once the writer gets through again it writes how
/// many were dropped. Lines still buffered when the process exits are written by ``flush(timeout:)``,
/// which `bootstrapLogging` runs at exit with a bound, so a blocked standard error cannot keep a
/// process from exiting either.
public final class LogOutput: Sendable {
    /// Standard error, 1 MiB of lines at most (a few thousand) unless ``capacity`` is changed.
    public static let standardError = LogOutput(descriptor: STDERR_FILENO, capacity: 1 << 20)

    private struct State {
        var pending: [UInt8] = []
        /// Lines dropped since the writer last reported them.
        var droppedSinceReport = 0
        var droppedTotal = 0
        /// The writer has taken lines out and is writing them.
        var writing = false
        var writerWaiting = false
        var writerStarted = false
        var counter: Counter?
        var capacity: Int
    }

    private let descriptor: Int32
    private let state: Mutex<State>
    private let wakeup = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - descriptor: where the lines go (the writer thread blocks on it when it is full).
    ///   - capacity: bytes of lines waiting at most; past it, lines are dropped.
    public init(descriptor: Int32, capacity: Int) {
        self.descriptor = descriptor
        self.state = Mutex(State(capacity: capacity))
    }

    /// Bytes of lines that may wait for the writer; past it, lines are dropped.
    public var capacity: Int {
        get { state.withLock { $0.capacity } }
        set { state.withLock { $0.capacity = newValue } }
    }

    /// A stream for swift-log's `StreamLogHandler(label:stream:)`: one `write` per log line.
    public var stream: Stream { Stream(output: self) }

    public struct Stream: TextOutputStream, Sendable {
        let output: LogOutput
        public mutating func write(_ string: String) { output.append(string) }
    }

    /// Lines dropped so far because the buffer was full.
    public var droppedLines: Int { state.withLock { $0.droppedTotal } }

    /// Counts dropped lines in `leasehold_log_lines_dropped_total` from now on (call after
    /// `MetricsSystem.bootstrap`, so the counter is the role's and shows 0 until a drop).
    public func countDropsInMetrics() {
        let counter = Counter(label: "leasehold_log_lines_dropped_total")
        state.withLock { $0.counter = counter }
    }

    /// Queues `line` for the writer, or drops it when `capacity` bytes already wait. Never blocks
    /// beyond a short lock.
    public func append(_ line: String) {
        var line = line
        let (wake, droppedCounter): (Bool, Counter?) = line.withUTF8 { bytes in
            state.withLock { state in
                if !state.writerStarted {
                    state.writerStarted = true
                    startWriter()
                }
                guard state.pending.count + bytes.count <= state.capacity else {
                    state.droppedSinceReport += 1
                    state.droppedTotal += 1
                    return (false, state.counter)
                }
                state.pending.append(contentsOf: bytes)
                let wake = state.writerWaiting
                state.writerWaiting = false
                return (wake, nil)
            }
        }
        droppedCounter?.increment()
        if wake { wakeup.signal() }
    }

    /// Waits until every line queued so far is written, or `timeout` has passed (a standard
    /// error that stays blocked); `true` when all were written.
    @discardableResult
    public func flush(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let done = state.withLock { $0.pending.isEmpty && !$0.writing }
            if done { return true }
            if ContinuousClock.now >= deadline { return false }
            usleep(1_000)
        }
    }

    private func startWriter() {
        let thread = Thread { [self] in runWriter() }
        thread.name = "leasehold-log"
        thread.start()
    }

    private func runWriter() {
        while true {
            let (chunk, dropped) = state.withLock { state -> ([UInt8], Int) in
                guard !state.pending.isEmpty || state.droppedSinceReport > 0 else {
                    state.writerWaiting = true
                    state.writing = false
                    return ([], 0)
                }
                state.writing = true
                defer {
                    state.pending.removeAll(keepingCapacity: true)
                    state.droppedSinceReport = 0
                }
                return (state.pending, state.droppedSinceReport)
            }
            if chunk.isEmpty && dropped == 0 {
                wakeup.wait()
                continue
            }
            writeAll(chunk)
            if dropped > 0 {
                writeAll(
                    Array(
                        "\(Self.timestamp()) warning leasehold.log: dropped=\(dropped) [LeaseholdRuntime] log lines dropped: standard error was blocked (a stalled log collector?)\n"
                            .utf8))
            }
        }
    }

    /// Writes all of `bytes`, waiting as long as the descriptor takes; gives up on the chunk on
    /// an error other than an interruption (standard error closed: nothing to do but go on).
    private func writeAll(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    var entry = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&entry, 1, -1)
                } else {
                    return
                }
            }
        }
    }

    /// swift-log's `StreamLogHandler` timestamp format, for the writer's own line.
    private static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [Int8](repeating: 0, count: 255)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
