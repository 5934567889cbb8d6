/// What every Redis client conforms to: ``RedisClient`` (a few connections on a reactor, or
/// a Redis Cluster behind it) and ``RedisClusterClient``.
///
/// Every Redis operation of the queue (enqueue, the read that takes the leases, the heartbeat's
/// renewal, the completion, reclaims, retries, dead letters, status) is written once against this
/// protocol, so the same code runs on one node or a cluster, from whichever role calls it.
public protocol RedisCommandRunner {
    /// Sends one command and returns its reply; an error reply throws ``RedisError``.
    func send(_ command: RedisCommand, timeout: Duration?) async throws -> RedisValue

    /// Runs a Lua script by SHA, loading it when the server does not have it (`NOSCRIPT`).
    func evaluate(_ script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument]) async throws
        -> RedisValue

    /// Whether the runner talks to a Redis Cluster, where one command or script may only touch
    /// keys of one hash slot. Batch operations then make one call per slot (``perSlot(_:key:_:)``).
    var isCluster: Bool { get }

    /// Whether the per-slot calls of one batch may run at the same time, each in a child task of
    /// the caller: only for a runner that is `Sendable` and takes overlapping calls (the cluster
    /// clients say so). `false` by default: the groups run one after another.
    var runsSlotGroupsConcurrently: Bool { get }
}

extension RedisCommandRunner {
    public var isCluster: Bool { false }
    public var runsSlotGroupsConcurrently: Bool { false }

    /// Runs `call` on `items` in one go on one node; on a cluster, once per group of items whose
    /// `key` shares a hash slot (see ``perSlotSettled(_:key:_:)`` for how the groups run). The
    /// results come back in `items`' order (`call` must return one result per item it is given);
    /// when a group's call fails, the first such error is thrown, after every group has run.
    public func perSlot<Item: Sendable, Result: Sendable>(
        _ items: [Item], key: (Item) -> String, _ call: @escaping ([Item]) async throws -> [Result]
    ) async throws -> [Result] {
        try await perSlotSettled(items, key: key, call).map { try $0.get() }
    }

    /// Runs `call` on `items` in one go on one node; on a cluster, once per group of items whose
    /// `key` shares a hash slot: all groups at once when the runner ``runsSlotGroupsConcurrently``
    /// (a node that stalls then holds up only its own group), else one after another. Each item
    /// gets its own group's result: a call that fails as a whole (connection, timeout) fails the
    /// items of that group only, never the others'.
    public func perSlotSettled<Item: Sendable, Value: Sendable>(
        _ items: [Item], key: (Item) -> String, _ call: @escaping ([Item]) async throws -> [Value]
    ) async -> [Result<Value, any Error>] {
        let call = SlotGroupCall(call: call)
        guard isCluster, items.count > 1 else { return await call.settled(items) }
        var groups: [Int: [Int]] = [:]
        var order: [Int] = []
        for (index, item) in items.enumerated() {
            let slot = RedisClusterSlot.slot(for: key(item))
            if groups[slot] == nil { order.append(slot) }
            groups[slot, default: []].append(index)
        }
        guard order.count > 1 else { return await call.settled(items) }
        let members = order.map { groups[$0] ?? [] }
        var results = [Result<Value, any Error>?](repeating: nil, count: items.count)
        if runsSlotGroupsConcurrently {
            await withTaskGroup(of: (group: Int, results: [Result<Value, any Error>]).self) { tasks in
                for (number, indices) in members.enumerated() {
                    let group = indices.map { items[$0] }
                    tasks.addTask { (number, await call.settled(group)) }
                }
                for await (number, groupResults) in tasks {
                    for (index, result) in zip(members[number], groupResults) { results[index] = result }
                }
            }
        } else {
            for indices in members {
                for (index, result) in zip(indices, await call.settled(indices.map { items[$0] })) {
                    results[index] = result
                }
            }
        }
        return results.map { $0! }
    }
}

/// A batch call of ``RedisCommandRunner/perSlotSettled(_:key:_:)``, settled: the call's results,
/// or its error for every item of the group. Unchecked: the call captures its runner, which the
/// compiler cannot see is `Sendable`; it goes into child tasks only for runners that say
/// ``RedisCommandRunner/runsSlotGroupsConcurrently``, which are (the reactor clients are
/// `Sendable`, and their calls from child tasks hop onto their reactor, or run there already when
/// the caller's task prefers it).
private struct SlotGroupCall<Item: Sendable, Value: Sendable>: @unchecked Sendable {
    let call: ([Item]) async throws -> [Value]

    func settled(_ group: [Item]) async -> [Result<Value, any Error>] {
        do {
            let values = try await call(group)
            guard values.count == group.count else {
                let error = RedisError(
                    source: .client, code: .err, message: "expected \(group.count) results, got \(values.count)")
                return group.map { _ in .failure(error) }
            }
            return values.map { .success($0) }
        } catch {
            return group.map { _ in .failure(error) }
        }
    }
}

extension RedisCommandRunner {
    /// Sends one command with the connection's own timeout.
    @discardableResult
    public func send(_ arguments: any RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(arguments), timeout: nil)
    }
}

extension RedisClient: RedisCommandRunner {
    public var runsSlotGroupsConcurrently: Bool { true }
}
extension RedisClusterClient: RedisCommandRunner {
    public var runsSlotGroupsConcurrently: Bool { true }
}
