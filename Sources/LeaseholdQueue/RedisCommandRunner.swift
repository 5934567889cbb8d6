import LeaseholdRedis

/// Where a queue operation sends its Redis commands: one blocking ``RedisConnection`` (on its pool
/// slot's thread), a pooled ``RedisClient``, a non-blocking connection on a reactor, or a Redis
/// Cluster client (blocking pools, or on a reactor).
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

    /// Whether the runner talks to a Redis Cluster, where one command or script may only touch
    /// keys of one hash slot. Batch operations then make one call per slot (``perSlot(_:key:_:)``).
    var isCluster: Bool { get }
}

extension RedisCommandRunner {
    public var isCluster: Bool { false }

    /// Runs `call` on `items` in one go on one node; on a cluster, once per group of items whose
    /// `key` shares a hash slot, one group after another. The results come back in `items`'
    /// order (`call` must return one result per item it is given).
    func perSlot<Item, Result>(
        _ items: [Item], key: (Item) -> String, _ call: ([Item]) async throws -> [Result]
    ) async throws -> [Result] {
        guard isCluster, items.count > 1 else { return try await call(items) }
        var groups: [Int: [Int]] = [:]
        var order: [Int] = []
        for (index, item) in items.enumerated() {
            let slot = RedisClusterSlot.slot(for: key(item))
            if groups[slot] == nil { order.append(slot) }
            groups[slot, default: []].append(index)
        }
        guard order.count > 1 else { return try await call(items) }
        var results = [Result?](repeating: nil, count: items.count)
        for slot in order {
            let indices = groups[slot] ?? []
            let replies = try await call(indices.map { items[$0] })
            for (index, reply) in zip(indices, replies) { results[index] = reply }
        }
        return results.map { $0! }
    }
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
extension RedisClusterClient: RedisCommandRunner {}
extension RedisAsyncClusterClient: RedisCommandRunner {}
