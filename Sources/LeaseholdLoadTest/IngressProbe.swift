import AsyncHTTPClient

/// Asks an ingress whether it is up.
public enum IngressProbe {
    /// The HTTP status of `GET url` (2 s timeout).
    public static func status(of url: String) async throws -> Int {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(2))
        _ = try await response.body.collect(upTo: 64 * 1024)
        return Int(response.status.code)
    }
}
