import Dispatch
import ServiceLifecycle

extension Reactor: Service {
    /// Waits for the service group's graceful shutdown (or the task's cancellation), then shuts
    /// the reactor down.
    ///
    /// Put the reactor first in its command's `ServiceGroup`, before the clients and roles that run
    /// on it: graceful shutdown goes in reverse order, so by the time it reaches the reactor every
    /// connection on it is closed and nothing enqueues work on it again (a job enqueued after the
    /// shutdown never runs). The group's tasks must not prefer this reactor as their executor:
    /// a service that should run on it hops onto it inside its own `run()`.
    public func run() async {
        try? await gracefulShutdown()
        // shutDown() blocks until the thread has exited: not on the cooperative pool.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.shutDown()
                done.resume()
            }
        }
    }
}
