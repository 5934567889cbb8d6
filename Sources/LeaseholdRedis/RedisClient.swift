import ConnectionPool

/// A pool of ``RedisConnection``s with an async API.
///
/// Every call runs synchronously on one pooled connection's dedicated queue (see
/// ``BlockingConnectionPool``): a `redisContext` is used by one thread at a time, never across an
/// `await`, and hiredis's blocking I/O never runs on Swift's cooperative pool. Give long blocking
/// reads (`XREADGROUP BLOCK`) their own client so they do not hold connections others need.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let pool: BlockingConnectionPool<RedisConnection>

    /// - Parameter size: the maximum number of connections (opened lazily).
    public init(configuration: RedisConfiguration, size: Int = 4) {
        self.configuration = configuration
        self.pool = BlockingConnectionPool(size: size, label: "leasehold.redis") {
            try RedisConnection(configuration: configuration)
        }
    }

    public var size: Int { pool.size }

    /// Runs `body` with one connection, on that connection's thread.
    public func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (RedisConnection) throws -> T
    ) async throws -> T {
        try await pool.withConnection(body)
    }

    /// Sends one command.
    @discardableResult
    public func send(_ command: RedisCommand, timeout: Duration? = nil) async throws -> RedisValue {
        try await pool.withConnection { try $0.send(command, timeout: timeout) }
    }

    /// Sends one command given as arguments.
    @discardableResult
    public func send(_ arguments: any RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(arguments))
    }

    /// Sends every command in one round trip; replies in order, error replies in place.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RedisValue] {
        try await pool.withConnection { try $0.pipeline(commands) }
    }

    /// Runs a Lua script by SHA, loading it on `NOSCRIPT`.
    @discardableResult
    public func evaluate(
        _ script: RedisScript, keys: [any RedisArgument] = [], arguments: [any RedisArgument] = []
    ) async throws -> RedisValue {
        try await pool.withConnection { try $0.evaluate(script, keys: keys, arguments: arguments) }
    }

    public func close() async {
        await pool.close()
    }
}
