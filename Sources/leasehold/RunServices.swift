import Logging
import ServiceLifecycle

/// Runs a role's services until SIGTERM or SIGINT (graceful shutdown, in reverse order), then
/// closes its clients — also when a service fails.
func runServices(_ services: [any Service], logger: Logger, closing close: () async -> Void) async throws {
    let group = ServiceGroup(
        configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    do {
        try await group.run()
    } catch {
        await close()
        throw error
    }
    await close()
}
