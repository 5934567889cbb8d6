import Foundation

/// How to reach Redis. Every field has a default; `REDIS_URL` is the usual source.
///
/// A URL may list several `host:port` pairs (`redis://h1:7000,h2:7001/0`): the nodes of a Redis
/// Cluster, any of which can tell a ``RedisClusterClient`` where every slot lives. ``host`` and
/// ``port`` are always the first node, so a ``RedisConnection`` given such a
/// configuration talks to that node alone.
public struct RedisConfiguration: Sendable, Equatable {
    /// Every node the configuration lists, in order; never empty. The first is ``host``:``port``.
    public var nodes: [RedisNodeAddress]
    /// ACL user name (Redis 6+); `nil` uses `AUTH <password>` alone.
    public var username: String?
    public var password: String?
    /// Database index, `SELECT`ed after connecting (always 0 for a cluster).
    public var database: Int
    /// Bound on opening a connection.
    public var connectTimeout: Duration
    /// Bound on every call that is not given its own timeout (socket send and receive timeout).
    public var commandTimeout: Duration
    /// Backpressure of the non-blocking connection (``RedisConnection``): at most this many
    /// commands waiting for their replies on one connection, and at most this many bytes of their
    /// arguments. A command past either bound is refused at once, nothing sent
    /// (``RedisError/Code/backlog``), instead of queueing without limit while Redis stalls — memory
    /// growing by arrival rate × timeout, then every caller failing at once. A healthy Redis keeps
    /// a connection's line to a round trip's worth of commands, far below both.
    public var maxQueuedCommands = 16_384
    public var maxQueuedBytes = 64 << 20

    public init(
        host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil,
        database: Int = 0, connectTimeout: Duration = .seconds(5), commandTimeout: Duration = .seconds(5)
    ) {
        self.init(
            nodes: [RedisNodeAddress(host: host, port: port)], username: username, password: password,
            database: database, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
    }

    /// - Parameter nodes: at least one address.
    public init(
        nodes: [RedisNodeAddress], username: String? = nil, password: String? = nil, database: Int = 0,
        connectTimeout: Duration = .seconds(5), commandTimeout: Duration = .seconds(5)
    ) {
        precondition(!nodes.isEmpty, "a Redis configuration needs at least one node")
        self.nodes = nodes
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }

    /// The first node's host name or address (an IPv6 literal without brackets).
    public var host: String {
        get { nodes[0].host }
        set { nodes[0].host = newValue }
    }

    /// The first node's port.
    public var port: Int {
        get { nodes[0].port }
        set { nodes[0].port = newValue }
    }

    /// Whether the URL listed more than one node (a cluster; see ``RedisClusterClient``).
    public var listsSeveralNodes: Bool { nodes.count > 1 }

    /// This configuration for one node only: same credentials and timeouts, database 0.
    public func forNode(_ address: RedisNodeAddress) -> RedisConfiguration {
        var configuration = self
        configuration.nodes = [address]
        configuration.database = 0
        return configuration
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]`, or
    /// `redis://[[user]:password@]host1[:port1],host2[:port2],…[/0]` for the nodes of a cluster.
    ///
    /// An IPv6 literal goes in brackets (`[::1]:7000`). With several nodes every one must have a
    /// host, a port omitted means 6379, no node may be listed twice, and the database must be 0
    /// (a cluster has no other). `rediss://` (TLS) is refused with a clear error: Debian's hiredis
    /// 0.14 has no TLS.
    public init(url: String) throws(RedisError) {
        guard let (singleHostURL, list) = Self.splitNodeList(url) else {
            try self.init(singleHostURL: url)
            return
        }
        // Scheme, credentials and database are read exactly as for one host; the list is
        // parsed here, node by node.
        try self.init(singleHostURL: singleHostURL)
        var nodes: [RedisNodeAddress] = []
        for (index, entry) in list.enumerated() {
            let node = try Self.parseNode(entry, number: index + 1)
            guard !nodes.contains(node) else {
                throw Self.invalidURL("node \(index + 1) (\(node)) is listed twice")
            }
            nodes.append(node)
        }
        self.nodes = nodes
        guard database == 0 else {
            throw Self.invalidURL("database \(database) with several nodes: a Redis Cluster has only database 0")
        }
    }

    /// `redis://host:port/db` (`redis://host1:port1,host2:port2/db` for several nodes) with any
    /// password replaced by `***`.
    public var redactedURL: String {
        var auth = ""
        if password != nil { auth = "\(username ?? ""):***@" } else if let username { auth = "\(username)@" }
        return "redis://\(auth)\(nodes.map(\.description).joined(separator: ","))/\(database)"
    }

    // MARK: Parsing

    private static func invalidURL(_ reason: String) -> RedisError {
        RedisError(source: .client, code: .invalidInput, message: "invalid REDIS_URL: \(reason)")
    }

    /// One host (or none): scheme, credentials, host, port and database through `URLComponents`.
    private init(singleHostURL url: String) throws(RedisError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw Self.invalidURL("not a URL (expected redis://host:port/db)")
        }
        guard scheme == "redis" else {
            if scheme == "rediss" { throw Self.invalidURL("TLS (rediss://) is not supported by hiredis 0.14") }
            throw Self.invalidURL("scheme must be redis://, got \(scheme)://")
        }
        self.init()
        if let host = components.host, !host.isEmpty {
            // An IPv6 literal keeps its brackets in the URL, but getaddrinfo wants the bare address.
            self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        }
        if let port = components.port {
            guard (1...65535).contains(port) else { throw Self.invalidURL("port \(port) out of range") }
            self.port = port
        }
        // `user` and `password` are already percent-decoded; decoding them again would turn a
        // literal `%41` (sent as `%2541`) into `A`.
        if let user = components.user, !user.isEmpty { self.username = user }
        if let password = components.password, !password.isEmpty { self.password = password }
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !path.isEmpty {
            guard let database = Int(path), database >= 0 else {
                throw Self.invalidURL("database \"\(path)\" is not a number")
            }
            self.database = database
        }
    }

    /// For a URL whose authority lists several hosts (has a comma after any credentials): the
    /// same URL with the list replaced by one placeholder host, and the list's entries. `nil` for
    /// any other string, which is then parsed as a one-host URL.
    private static func splitNodeList(_ url: String) -> (String, [Substring])? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { "/?#".contains($0) } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        // Credentials end at the last `@` (a password may hold a percent-encoded one, never a bare one).
        let credentialsEnd = authority.lastIndex(of: "@")
        let list = credentialsEnd.map { authority[authority.index(after: $0)...] } ?? authority
        guard list.contains(",") else { return nil }
        let credentials = credentialsEnd.map { String(authority[...$0]) } ?? ""
        let placeholder = url[..<schemeEnd.upperBound] + credentials + "localhost" + rest[authorityEnd...]
        return (String(placeholder), list.split(separator: ",", omittingEmptySubsequences: false))
    }

    /// `host[:port]` or `[ipv6][:port]`, the `number`th entry of a node list.
    private static func parseNode(_ entry: Substring, number: Int) throws(RedisError) -> RedisNodeAddress {
        let host: Substring
        var portText: Substring?
        if entry.hasPrefix("[") {
            guard let close = entry.firstIndex(of: "]") else {
                throw invalidURL("node \(number) (\"\(entry)\") has no closing ] after its IPv6 address")
            }
            host = entry[entry.index(after: entry.startIndex)..<close]
            let after = entry[entry.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw invalidURL("node \(number) (\"\(entry)\"): expected :port after ]")
                }
                portText = after.dropFirst()
            }
            guard !host.isEmpty, host.contains(":"), host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." })
            else {
                throw invalidURL("node \(number) (\"\(entry)\"): \"\(host)\" is not an IPv6 address")
            }
        } else {
            let parts = entry.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else {
                throw invalidURL("node \(number) (\"\(entry)\"): an IPv6 address must be in brackets, [addr]:port")
            }
            host = parts[0]
            portText = parts.count == 2 ? parts[1] : nil
            guard !host.isEmpty else { throw invalidURL("node \(number) (\"\(entry)\") has an empty host") }
            guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) }) else {
                throw invalidURL("node \(number) (\"\(entry)\"): \"\(host)\" is not a host name or IPv4 address")
            }
        }
        var port = 6379
        if let portText {
            guard !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
                let value = Int(portText)
            else {
                throw invalidURL("node \(number) (\"\(entry)\"): port \"\(portText)\" is not a number")
            }
            guard (1...65535).contains(value) else {
                throw invalidURL("node \(number) (\"\(entry)\"): port \(value) out of range")
            }
            port = value
        }
        return RedisNodeAddress(host: String(host), port: port)
    }
}

/// Where one Redis server listens.
public struct RedisNodeAddress: Sendable, Hashable, CustomStringConvertible {
    /// A host name or an IP address (an IPv6 literal without brackets).
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, `[ipv6]:port`.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
