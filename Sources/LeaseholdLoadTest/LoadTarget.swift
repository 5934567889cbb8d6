import Foundation

/// An ingress the load generator sends to over ``LoadHTTPConnection``: its address, resolved once
/// before the run, and the `Host` header its requests carry.
struct LoadTarget: Sendable {
    var address: sockaddr_in
    /// `host:port` as the URL gives it.
    var host: String

    /// The targets for `urls` when every one is a plain `http://host[:port]` with an IPv4 address
    /// (or a name that resolves to one) and no path; `nil` otherwise (the load test then sends
    /// through AsyncHTTPClient).
    static func plainHTTP(_ urls: [String]) -> [LoadTarget]? {
        var targets: [LoadTarget] = []
        for url in urls {
            guard let components = URLComponents(string: url), components.scheme == "http",
                let host = components.host, components.path.isEmpty || components.path == "/",
                let address = try? LoadHTTPConnection.resolve(url)
            else { return nil }
            targets.append(LoadTarget(address: address, host: components.port.map { "\(host):\($0)" } ?? host))
        }
        return targets.isEmpty ? nil : targets
    }
}
