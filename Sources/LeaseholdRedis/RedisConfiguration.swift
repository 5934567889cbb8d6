import Foundation

/// How to reach Redis. Every field has a default; `REDIS_URL` is the usual source.
public struct RedisConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// ACL user name (Redis 6+); `nil` uses `AUTH <password>` alone.
    public var username: String?
    public var password: String?
    /// Database index, `SELECT`ed after connecting.
    public var database: Int
    /// Bound on opening a connection.
    public var connectTimeout: Duration
    /// Bound on every call that is not given its own timeout (socket send and receive timeout).
    public var commandTimeout: Duration

    public init(
        host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil,
        database: Int = 0, connectTimeout: Duration = .seconds(5), commandTimeout: Duration = .seconds(5)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]`.
    ///
    /// `rediss://` (TLS) is refused with a clear error: Debian's hiredis 0.14 has no TLS.
    public init(url: String) throws(RedisError) {
        func invalid(_ reason: String) -> RedisError {
            RedisError(source: .client, code: .invalidInput, message: "invalid REDIS_URL: \(reason)")
        }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw invalid("not a URL (expected redis://host:port/db)")
        }
        guard scheme == "redis" else {
            if scheme == "rediss" { throw invalid("TLS (rediss://) is not supported by hiredis 0.14") }
            throw invalid("scheme must be redis://, got \(scheme)://")
        }
        self.init()
        if let host = components.host, !host.isEmpty {
            // An IPv6 literal keeps its brackets in the URL, but getaddrinfo wants the bare address.
            self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        }
        if let port = components.port {
            guard (1...65535).contains(port) else { throw invalid("port \(port) out of range") }
            self.port = port
        }
        // `user` and `password` are already percent-decoded; decoding them again would turn a
        // literal `%41` (sent as `%2541`) into `A`.
        if let user = components.user, !user.isEmpty { self.username = user }
        if let password = components.password, !password.isEmpty { self.password = password }
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !path.isEmpty {
            guard let database = Int(path), database >= 0 else { throw invalid("database \"\(path)\" is not a number") }
            self.database = database
        }
    }

    /// `redis://host:port/db` with any password replaced by `***`.
    public var redactedURL: String {
        var auth = ""
        if password != nil { auth = "\(username ?? ""):***@" } else if let username { auth = "\(username)@" }
        let address = host.contains(":") ? "[\(host)]" : host  // IPv6 literal
        return "redis://\(auth)\(address):\(port)/\(database)"
    }
}
