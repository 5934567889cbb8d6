import Dispatch

/// A one-way signal between synchronous closures running on different pool threads (for example
/// two transactions that must take their first row lock before either takes its second).
///
/// Waiting is bounded, so a broken test fails with ``ThreadSignal/TimedOut`` instead of hanging.
/// Only wait from a connection's own thread (inside a `withConnection` / `withTransaction`
/// closure), never from an async context.
final class ThreadSignal: Sendable {
    struct TimedOut: Error, CustomStringConvertible {
        var description: String { "timed out waiting for another thread's signal" }
    }

    private let semaphore = DispatchSemaphore(value: 0)

    func fire() {
        semaphore.signal()
    }

    func wait(seconds: Int = 20) throws {
        if semaphore.wait(timeout: .now() + .seconds(seconds)) == .timedOut { throw TimedOut() }
    }
}
