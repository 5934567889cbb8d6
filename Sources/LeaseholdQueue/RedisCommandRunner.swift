import LeaseholdRedis

/// Where a queue operation sends its Redis commands: one blocking ``RedisConnection`` (on its pool
/// slot's thread), a pooled ``RedisClient``, or a non-blocking connection on a reactor.
///
/// The worker's hot-path operations (the read that takes the leases, the heartbeat's renewal, the
/// completion, a release) are written once against this protocol, so the same code runs
/// wherever the worker keeps its connections. A synchronous method satisfies an `async`
/// requirement, so the blocking connection conforms as it is.
public protocol RedisCommandRunner {
    /// Sends one command and returns its reply; an error reply throws ``RedisError``.
    func send(_ command: RedisCommand, timeout: Duration?) async throws -> RedisValue

    /// Runs a Lua script by SHA, loading it when the server does not have it (`NOSCRIPT`).
    func evaluate(_ script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument]) async throws
        -> RedisValue
}

extension RedisCommandRunner {
    /// Sends one command with the connection's own timeout.
    @discardableResult
    func send(_ arguments: any RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(arguments), timeout: nil)
    }
}

extension RedisConnection: RedisCommandRunner {}
extension RedisClient: RedisCommandRunner {}
extension RedisAsyncClient: RedisCommandRunner {}
