import ConnectionPool

/// A pool of ``RedisConnection``s with an async API.
///
/// Every call runs synchronously on one pooled connection's dedicated queue (see
/// ``BlockingConnectionPool``): a `redisContext` is used by one thread at a time, never across an
/// `await`, and hiredis's blocking I/O never runs on Swift's cooperative pool. Give long blocking
/// reads (`XREADGROUP BLOCK`) their own client so they do not hold connections others need.
///
/// ## A Redis Cluster
///
/// Given a configuration that lists several nodes (``RedisConfiguration/listsSeveralNodes``), the
/// client is a ``RedisClusterClient`` underneath, with a pool of `size` connections per node:
/// `send`, `pipeline` and `evaluate` go to the master of their keys' hash slot (see that type for
/// redirects and failover), and ``isCluster`` is `true`. There is no single connection to lend
/// then: ``withConnection(_:)`` throws, and code meant for both runs through the commands.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let backend: Backend

    private enum Backend: Sendable {
        case node(BlockingConnectionPool<RedisConnection>)
        case cluster(RedisClusterClient)
    }

    /// - Parameter size: the maximum number of connections (opened lazily); per node on a cluster.
    public init(configuration: RedisConfiguration, size: Int = 4) {
        self.configuration = configuration
        if configuration.listsSeveralNodes {
            do {
                self.backend = .cluster(try RedisClusterClient(configuration: configuration, poolSize: size))
            } catch {
                // `RedisConfiguration(url:)` refuses what the cluster client would (a database other
                // than 0 with several nodes); only a configuration built by hand can get here.
                preconditionFailure("a cluster configuration the cluster client refuses: \(error)")
            }
        } else {
            self.backend = .node(
                BlockingConnectionPool(size: size, label: "leasehold.redis") {
                    try RedisConnection(configuration: configuration)
                })
        }
    }

    /// Connections in the pool (per node on a cluster).
    public var size: Int {
        switch backend {
        case .node(let pool): pool.size
        case .cluster(let cluster): cluster.poolSize
        }
    }

    /// Whether the configuration lists the nodes of a Redis Cluster (see "A Redis Cluster").
    public var isCluster: Bool {
        if case .cluster = backend { return true }
        return false
    }

    /// Runs `body` with one connection, on that connection's thread.
    ///
    /// - Throws: on a cluster, a client error before running anything: which node's connection
    ///   would depend on the keys `body` uses.
    public func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (RedisConnection) throws -> T
    ) async throws -> T {
        switch backend {
        case .node(let pool): return try await pool.withConnection(body)
        case .cluster:
            throw RedisError(
                source: .client, code: .invalidInput,
                message: "a Redis Cluster client lends no single connection; send the commands through the client")
        }
    }

    /// The configuration of the node that serves `key`: this client's own on one node, the
    /// master of the key's slot on a cluster (for a short-lived connection of one's own).
    public func configuration(forKey key: some RedisArgument) async throws -> RedisConfiguration {
        switch backend {
        case .node: return configuration
        case .cluster(let cluster):
            return configuration.forNode(try await cluster.master(forSlot: RedisClusterSlot.slot(for: key)))
        }
    }

    /// Sends one command.
    @discardableResult
    public func send(_ command: RedisCommand, timeout: Duration? = nil) async throws -> RedisValue {
        switch backend {
        case .node(let pool): return try await pool.withConnection { try $0.send(command, timeout: timeout) }
        case .cluster(let cluster): return try await cluster.send(command, timeout: timeout)
        }
    }

    /// Sends one command given as arguments.
    @discardableResult
    public func send(_ arguments: any RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(arguments))
    }

    /// Sends every command in one round trip; replies in order, error replies in place.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RedisValue] {
        switch backend {
        case .node(let pool): return try await pool.withConnection { try $0.pipeline(commands) }
        case .cluster(let cluster): return try await cluster.pipeline(commands)
        }
    }

    /// Runs a Lua script by SHA, loading it on `NOSCRIPT`.
    @discardableResult
    public func evaluate(
        _ script: RedisScript, keys: [any RedisArgument] = [], arguments: [any RedisArgument] = []
    ) async throws -> RedisValue {
        switch backend {
        case .node(let pool):
            return try await pool.withConnection { try $0.evaluate(script, keys: keys, arguments: arguments) }
        case .cluster(let cluster): return try await cluster.evaluate(script, keys: keys, arguments: arguments)
        }
    }

    public func close() async {
        switch backend {
        case .node(let pool): await pool.close()
        case .cluster(let cluster): await cluster.close()
        }
    }
}
