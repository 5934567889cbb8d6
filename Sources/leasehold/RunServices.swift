import LeaseholdReactor
import Logging
import ServiceLifecycle

/// Runs a command as one `ServiceGroup` until SIGTERM or SIGINT.
///
/// `services` are in start order: the reactor, the clients, then the role and its endpoints.
/// Graceful shutdown goes in reverse: the endpoints stop, the role drains what it holds, the
/// clients close, the reactor stops last, once nothing runs on it. A service that returns or
/// throws before that shuts the rest down the same way (its error is then rethrown), so a role
/// that fails still closes its connections in order.
func runServiceGroup(_ services: [any Service], logger: Logger) async throws {
    let group = ServiceGroup(
        configuration: .init(
            services: services.map { service in
                .init(
                    service: service, successTerminationBehavior: .gracefullyShutdownGroup,
                    failureTerminationBehavior: .gracefullyShutdownGroup)
            },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
}

/// Runs `service` with `reactor` as its task executor, so the tasks it starts (ingress: every
/// request handler) run on the reactor's thread beside the connections they use. Only this
/// service's tasks: the group's own tasks stay off the reactor, which must outlive them.
struct OnReactor<Wrapped: Service>: Service, CustomStringConvertible {
    let reactor: Reactor
    let service: Wrapped

    func run() async throws {
        try await withTaskExecutorPreference(reactor) { try await service.run() }
    }

    var description: String { "\(service)" }
}
