import ServiceLifecycle

extension PostgresClient: Service {
    /// Waits for the service group's graceful shutdown (or the task's cancellation), then closes
    /// the client (``close()``: lent connections are waited for, waiters fail).
    ///
    /// Put the client before the services that use it in its command's `ServiceGroup`: graceful
    /// shutdown goes in reverse order, so they have drained by the time the client closes. The
    /// connections are opened on demand, not here.
    public func run() async {
        try? await gracefulShutdown()
        await close()
    }
}
