import Dispatch
import ServiceLifecycle

extension RedisClient: Service {
    /// Waits for the service group's graceful shutdown (or the task's cancellation), then closes
    /// the client (``close()``; a client with a reactor of its own stops that reactor too).
    ///
    /// Put the client before the services that use it in its command's `ServiceGroup`: graceful
    /// shutdown goes in reverse order, so they have drained by the time the client closes. The
    /// connections are opened on demand, not here.
    public func run() async {
        try? await gracefulShutdown()
        // Off the reactor (close() from there hands the closing to the reactor's thread), and off
        // the cooperative pool: a client with its own reactor waits for that thread to exit.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.close()
                done.resume()
            }
        }
    }
}
