import ConnectionPool
import Dispatch
import Synchronization
import Testing

/// An interrupt (libpq's `PQcancel` opens a connection of its own and waits for the server) may
/// block; cancelling a task must not wait for it, because the cancellation handler runs on the
/// cancelling thread, usually one of Swift's few cooperative threads.
struct ConnectionPoolInterruptTests {
    /// What the test and the pool's threads share.
    final class Box: Sendable {
        let release = ThreadSignal()
        let started = ThreadSignal()
        let outcome = Mutex<String?>(nil)
    }

    /// A connection whose call runs until it is interrupted, and whose interrupt blocks until the
    /// test lets it go (as `PQcancel` does while the server is slow to answer).
    final class SlowInterruptConnection: BlockingConnection {
        let interrupted = ThreadSignal()
        let slowInterrupter: SlowInterrupter

        init(box: Box) {
            slowInterrupter = SlowInterrupter(interrupted: interrupted, box: box)
        }

        func isReusable() -> Bool { true }
        func close() {}
        var interrupter: (any ConnectionInterrupter)? { slowInterrupter }
    }

    final class SlowInterrupter: ConnectionInterrupter {
        let interrupted: ThreadSignal
        let box: Box

        init(interrupted: ThreadSignal, box: Box) {
            self.interrupted = interrupted
            self.box = box
        }

        func interrupt() {
            // Released by the test only once `task.cancel()` has returned.
            let result = (try? box.release.wait(seconds: 10)) == nil ? "cancel waited for the interrupt" : "released"
            box.outcome.withLock { $0 = $0 ?? result }
            interrupted.fire()
        }
    }

    @Test("task.cancel() returns while the interrupt is still blocked; the interrupt then ends the call")
    func cancelDoesNotWaitForABlockingInterrupt() async throws {
        let box = Box()
        let pool = BlockingConnectionPool<SlowInterruptConnection>(size: 1, label: "test.interrupt") {
            SlowInterruptConnection(box: box)
        }
        let task = Task {
            try await pool.withConnection { connection in
                box.started.fire()
                try connection.interrupted.wait()  // "the statement", until interrupted
                return "interrupted"
            }
        }
        // Wait (off the cooperative pool) until the call is running on the slot's queue.
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async { continuation.resume(with: Result { try box.started.wait() }) }
        }
        task.cancel()
        box.release.fire()
        #expect(try await task.value == "interrupted")
        #expect(box.outcome.withLock { $0 } == "released")
        await pool.close()
    }
}
