import Hummingbird
import Logging
import Prometheus

/// The small HTTP server every non-HTTP role (worker, supervisor) runs when
/// `LEASEHOLD_METRICS_PORT` is set: `GET /metrics` (Prometheus text), `GET /healthz` (the process is
/// up) and `GET /readyz` (its dependencies answer), for Prometheus and Compose healthchecks.
public func buildMetricsEndpoint(
    host: String, port: Int, registry: PrometheusCollectorRegistry, serverName: String, logger: Logger,
    ready: @escaping @Sendable () async -> Bool
) -> some ApplicationProtocol {
    let router = Router()
    router.get("healthz") { _, _ in "ok\n" }
    router.get("readyz") { _, _ -> String in
        guard await ready() else { throw HTTPError(.serviceUnavailable, message: "a dependency does not answer") }
        return "ready\n"
    }
    router.get("metrics") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }
    return Application(
        router: router,
        configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: serverName),
        logger: logger)
}
