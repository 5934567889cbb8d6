import Dispatch

/// A one-way signal between synchronous closures running on different pool threads (for example
/// two transactions that must take their first row lock before either takes its second).
///
/// Waiting is bounded, so a broken test fails with ``ThreadSignal/TimedOut`` instead of hanging.
/// The synchronous wait blocks its thread: never call it on a reactor or from async code (use the
/// async one there).
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

    /// ``wait(seconds:)`` from async code, such as a body running on a reactor: the blocking wait
    /// runs on a dispatch queue while the task is suspended, so the thread it came from (the
    /// reactor's, shared by every connection of a client) goes on serving the other side.
    func wait(seconds: Int = 20) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async { continuation.resume(with: Result { try self.wait(seconds: seconds) }) }
        }
    }
}
