import NIOConcurrencyHelpers

/// A Redis Cluster client with the shape of ``RedisClient``: `send`, `pipeline`, `evaluate`.
///
/// ## Routing
///
/// Every command goes to the master serving its keys' hash slot (``RedisClusterSlot``), found in a
/// slot map read with `CLUSTER SLOTS` from any reachable node: first the nodes of the current map,
/// then the configured ones, so a dead first node in `REDIS_URL` only costs a refused connection.
/// A command's keys come from ``RedisClusterKeys`` or are named by the caller
/// (``send(_:keys:timeout:)``); scripts name theirs. Keys of one command or script must share a
/// slot (give them a common hash tag, `lh:{bookings:3}:…`): otherwise the client refuses the call
/// with a ``RedisError/Code/crossSlot`` client error before sending anything. A command without
/// keys (`PING`, `INFO`) goes to any master.
///
/// ## Redirects and failures
///
/// - `MOVED slot node`: the slot now lives on `node`. The map is patched for that slot, refreshed
///   from `node` if the last refresh is more than ``mapRefreshInterval`` old, and the command is
///   sent again.
/// - `ASK slot node`: the slot is being migrated and the key may already be on `node`. The command
///   is sent there once, on one connection right after `ASKING`; the map is left as it is.
/// - `TRYAGAIN` (a multi-key command while its keys are split by a migration), `CLUSTERDOWN` (a
///   master failed and no replica has taken over yet), and a connection that cannot be opened
///   (nothing was sent): the map is refreshed (not for `TRYAGAIN`) and the command sent again
///   after a pause (50 ms doubling, at most 1 s).
/// - Any other connection failure (the command may have run): the map is refreshed, so the next
///   call goes to whichever node serves the slot now, and the error is thrown; it is never
///   retried here, because running a command twice is not safe in general.
///
/// A call gives up after ``maxRedirects`` redirects and retries and throws the last error (a
/// redirect loop as ``RedisError/Code/tooManyRedirects``).
///
/// ## Connections
///
/// One ``RedisClient`` (a pool of ``RedisConnection``s, opened lazily) per node, created when a
/// node is first used and kept until ``close()``; each node is reached with the configuration's
/// credentials and timeouts. A `redisContext` is used exactly as ``RedisClient`` uses it: on its
/// pool slot's queue, never across an `await`.
public final class RedisClusterClient: Sendable {
    /// The nodes to read the first slot map from, credentials and timeouts.
    public let configuration: RedisConfiguration
    /// Connections per node.
    public let poolSize: Int
    /// How many redirects and retries one call may take in all.
    public let maxRedirects: Int
    /// After a `MOVED`, the whole map is read again only if it is at least this old (a
    /// resharding moves many slots; one refresh learns them all).
    public let mapRefreshInterval: Duration

    private let state = NIOLockedValueBox(State())

    private struct State {
        var map: RedisClusterMap?
        var pools: [RedisNodeAddress: RedisClient] = [:]
        var refreshing = false
        var refreshWaiters: [CheckedContinuation<Void, Never>] = []
        var refreshes = 0
        var lastRefresh: ContinuousClock.Instant?
        var closed = false
    }

    /// - Parameters:
    ///   - configuration: every node listed is a place to read the slot map from; the database
    ///     must be 0 (a cluster has no other).
    ///   - poolSize: connections per node (opened lazily).
    ///   - maxRedirects: redirects and retries per call.
    public init(
        configuration: RedisConfiguration, poolSize: Int = 4, maxRedirects: Int = 5,
        mapRefreshInterval: Duration = .seconds(1)
    ) throws(RedisError) {
        guard configuration.database == 0 else {
            throw RedisError(
                source: .client, code: .invalidInput,
                message: "database \(configuration.database): a Redis Cluster has only database 0")
        }
        guard poolSize >= 1, maxRedirects >= 1 else {
            throw RedisError(
                source: .client, code: .invalidInput, message: "a cluster client needs poolSize and maxRedirects ≥ 1")
        }
        self.configuration = configuration
        self.poolSize = poolSize
        self.maxRedirects = maxRedirects
        self.mapRefreshInterval = mapRefreshInterval
    }

    // MARK: Commands

    /// Sends one command to the master serving its keys (see ``RedisClusterKeys``).
    ///
    /// - Throws: a client error before sending anything when the command is unknown to
    ///   ``RedisClusterKeys`` or its keys span slots; otherwise what ``RedisClient/send(_:timeout:)``
    ///   throws, after redirects and retries.
    @discardableResult
    public func send(_ command: RedisCommand, timeout: Duration? = nil) async throws -> RedisValue {
        let keys = try RedisClusterKeys.keys(of: command)
        return try await send(command, slot: RedisClusterKeys.slot(of: keys, command: command.name), timeout: timeout)
    }

    /// Sends one command given as arguments.
    @discardableResult
    public func send(_ arguments: any RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(arguments))
    }

    /// Sends one command whose keys the caller names (for a command ``RedisClusterKeys`` does not
    /// know); no keys means any master.
    @discardableResult
    public func send(_ command: RedisCommand, keys: [any RedisArgument], timeout: Duration? = nil) async throws
        -> RedisValue
    {
        let slot = try RedisClusterKeys.slot(of: keys.map(\.redisBytes), command: command.name)
        return try await send(command, slot: slot, timeout: timeout)
    }

    /// Runs a Lua script by SHA (loading it on `NOSCRIPT`, per node) on the master serving its keys.
    ///
    /// - Throws: a ``RedisError/Code/crossSlot`` client error, before sending, when the keys hash
    ///   to different slots.
    @discardableResult
    public func evaluate(
        _ script: RedisScript, keys: [any RedisArgument] = [], arguments: [any RedisArgument] = []
    ) async throws -> RedisValue {
        let keys = keys.map(\.redisBytes)
        let arguments = arguments.map(\.redisBytes)
        let slot = try RedisClusterKeys.slot(of: keys, command: "EVALSHA")
        return try await run(slot: slot, command: "EVALSHA") { client, asking in
            guard asking else { return try await client.evaluate(script, keys: keys, arguments: arguments) }
            return try await client.withConnection { connection in
                // `ASKING` holds for the next command only, so a `SCRIPT LOAD` in between would
                // spend it: send the source itself when this node lacks the script.
                let keyArguments: [any RedisArgument] = keys
                let tail: [any RedisArgument] = [keys.count] + keyArguments + arguments
                try connection.send("ASKING")
                if let sha = script.sha {
                    do {
                        return try connection.send(RedisCommand(["EVALSHA", sha] + tail))
                    } catch let error as RedisError where error.code == .noScript {
                        try connection.send("ASKING")
                    }
                }
                return try connection.send(RedisCommand(["EVAL", script.source] + tail))
            }
        }
    }

    /// Sends the commands in one round trip per node, the nodes' batches at once; replies in the
    /// order of `commands`, error replies in place.
    ///
    /// Commands for one node run in their order; commands for different nodes run concurrently,
    /// in no order relative to each other. A command redirected (`MOVED`, `ASK`) or told to try
    /// again is sent again on its own after its batch, as ``send(_:timeout:)`` would.
    ///
    /// - Throws: a client error, before sending anything, for a command whose keys are unknown or
    ///   span slots; a connection error if a node's batch failed after it was sent (the replies of
    ///   the other nodes are then lost, and that batch's outcome is unknown).
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        var slots: [Int?] = []
        for command in commands {
            slots.append(try RedisClusterKeys.slot(of: RedisClusterKeys.keys(of: command), command: command.name))
        }
        var batches: [RedisNodeAddress: [Int]] = [:]
        for (index, slot) in slots.enumerated() {
            batches[try await node(serving: slot), default: []].append(index)
        }
        var replies = [RedisValue](repeating: .null, count: commands.count)
        var again: [Int] = []
        var failure: (any Error)?
        try await withThrowingTaskGroup(of: (RedisNodeAddress, [Int], Result<[RedisValue], any Error>).self) {
            group in
            for (node, indices) in batches {
                let client = try pool(for: node)
                let batch = indices.map { commands[$0] }
                group.addTask {
                    do {
                        return (node, indices, .success(try await client.pipeline(batch)))
                    } catch {
                        return (node, indices, .failure(error))
                    }
                }
            }
            for try await (node, indices, result) in group {
                switch result {
                case .success(let values):
                    for (index, value) in zip(indices, values) {
                        replies[index] = value
                        guard case .error(let error) = value else { continue }
                        if let redirect = RedisClusterRedirect(error, from: node) {
                            if redirect.kind == .moved { await followMoved(redirect) }
                            again.append(index)
                        } else if error.code == .tryAgain || error.code == .clusterDown {
                            again.append(index)
                        }
                    }
                case .failure(let error as RedisError) where error.source == .connection && error.code == .connect:
                    again += indices  // nothing of this batch was sent
                case .failure(let error):
                    failure = failure ?? error
                }
            }
        }
        if let failure {
            if let error = failure as? RedisError, error.source == .connection { await refreshQuietly(preferring: nil) }
            throw failure
        }
        for index in again.sorted() {
            do {
                replies[index] = try await send(commands[index], slot: slots[index], timeout: nil)
            } catch let error as RedisError where error.source != .connection {
                replies[index] = .error(error)
            }
        }
        return replies
    }

    // MARK: Slot map

    /// The slot map in use; `nil` until the first call (or ``refreshMap()``) has read one.
    public var map: RedisClusterMap? {
        state.withLockedValue { $0.map }
    }

    /// How many times a whole slot map has been read (for metrics and tests).
    public var mapRefreshes: Int {
        state.withLockedValue { $0.refreshes }
    }

    /// The master serving `slot`, reading the map first if there is none yet.
    public func master(forSlot slot: Int) async throws -> RedisNodeAddress {
        try await node(serving: slot)
    }

    /// Reads the slot map again (`CLUSTER SLOTS`) from the first node that answers: the current
    /// map's nodes, then the configured ones. Concurrent calls share one read.
    ///
    /// - Throws: ``RedisError/Code/connect`` when no node answers; a client error when a node
    ///   answers that it is not in cluster mode.
    public func refreshMap() async throws {
        try await refresh(preferring: nil)
    }

    /// Closes every node's connections; calls after this fail.
    public func close() async {
        let pools = state.withLockedValue { state in
            state.closed = true
            defer { state.pools.removeAll() }
            return Array(state.pools.values)
        }
        for pool in pools { await pool.close() }
    }

    // MARK: Routing

    private func send(_ command: RedisCommand, slot: Int?, timeout: Duration?) async throws -> RedisValue {
        try await run(slot: slot, command: command.name) { client, asking in
            guard asking else { return try await client.send(command, timeout: timeout) }
            return try await client.withConnection { connection in
                try connection.send("ASKING")
                return try connection.send(command, timeout: timeout)
            }
        }
    }

    /// Runs `operation` on the pool of the node serving `slot` (any master for `nil`), following
    /// redirects and retrying as the type's documentation says.
    private func run<T: Sendable>(
        slot: Int?, command: String, _ operation: (RedisClient, _ asking: Bool) async throws -> T
    ) async throws -> T {
        var askNode: RedisNodeAddress?
        var tries = 0
        while true {
            tries += 1
            var node: RedisNodeAddress?
            do {
                let target: RedisNodeAddress
                if let askNode { target = askNode } else { target = try await self.node(serving: slot) }
                node = target
                let asking = askNode != nil
                askNode = nil
                return try await operation(try pool(for: target), asking)
            } catch let error as RedisError {
                if let node, let redirect = RedisClusterRedirect(error, from: node) {
                    guard tries <= maxRedirects else {
                        throw RedisError(
                            source: .client, code: .tooManyRedirects,
                            message: "gave up after \(tries) tries; last reply: \(error.message)", command: command)
                    }
                    switch redirect.kind {
                    case .moved: await followMoved(redirect)
                    case .ask: askNode = redirect.node
                    }
                    continue
                }
                let retryable =
                    error.source == .server && (error.code == .tryAgain || error.code == .clusterDown)
                    || error.source == .connection && error.code == .connect
                guard retryable else {
                    if error.source == .connection { await refreshQuietly(preferring: nil) }
                    throw error
                }
                guard tries <= maxRedirects else { throw error }
                if error.code != .tryAgain { await refreshQuietly(preferring: nil) }
                try await Task.sleep(for: .milliseconds(min(50 << (tries - 1), 1000)))
            }
        }
    }

    /// The master serving `slot`, or any master for `nil`; reads the map when there is none or
    /// when it has no master for the slot.
    private func node(serving slot: Int?) async throws -> RedisNodeAddress {
        var map = try await currentMap()
        if let slot, map.master(forSlot: slot) == nil {
            try await refresh(preferring: nil)
            map = try await currentMap()
        }
        guard let slot else {
            guard let any = map.masters.randomElement() else { throw noMaster("any slot") }
            return any
        }
        guard let master = map.master(forSlot: slot) else { throw noMaster("slot \(slot)") }
        return master
    }

    private func noMaster(_ what: String) -> RedisError {
        RedisError(source: .server, code: .clusterDown, message: "CLUSTERDOWN no node serves \(what) in the slot map")
    }

    private func currentMap() async throws -> RedisClusterMap {
        if let map = self.map { return map }
        try await refresh(preferring: nil)
        guard let map = self.map else {
            throw RedisError(
                source: .connection, code: .connect,
                message: "no slot map for \(configuration.redactedURL): no node answered CLUSTER SLOTS")
        }
        return map
    }

    /// Patches the map for a `MOVED` and reads the whole map from the new owner if the last
    /// read is older than ``mapRefreshInterval``.
    private func followMoved(_ redirect: RedisClusterRedirect) async {
        let stale = state.withLockedValue { state -> Bool in
            state.map = state.map?.moving(slot: redirect.slot, to: redirect.node)
            guard let last = state.lastRefresh else { return true }
            return ContinuousClock.now - last >= mapRefreshInterval
        }
        if stale { await refreshQuietly(preferring: redirect.node) }
    }

    private func refreshQuietly(preferring node: RedisNodeAddress?) async {
        try? await refresh(preferring: node)
    }

    private func refresh(preferring preferred: RedisNodeAddress?) async throws {
        let isReader = state.withLockedValue { state -> Bool in
            if state.refreshing { return false }
            state.refreshing = true
            return true
        }
        guard isReader else {
            // Another task is reading the map: wait for it.
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiting = state.withLockedValue { state -> Bool in
                    guard state.refreshing else { return false }
                    state.refreshWaiters.append(continuation)
                    return true
                }
                if !waiting { continuation.resume() }
            }
            return
        }
        defer {
            let waiters = state.withLockedValue { state in
                state.refreshing = false
                defer { state.refreshWaiters.removeAll() }
                return state.refreshWaiters
            }
            for waiter in waiters { waiter.resume() }
        }

        var candidates: [RedisNodeAddress] = []
        for node in [preferred].compactMap({ $0 }) + (map?.nodes ?? []) + configuration.nodes
        where !candidates.contains(node) {
            candidates.append(node)
        }
        var failures: [String] = []
        for node in candidates {
            do {
                let reply = try await pool(for: node).send("CLUSTER", "SLOTS")
                let map = try RedisClusterMap(clusterSlotsReply: reply, queried: node)
                guard !map.ranges.isEmpty else {
                    failures.append("\(node): no slots assigned")
                    continue
                }
                state.withLockedValue { state in
                    state.map = map
                    state.refreshes += 1
                    state.lastRefresh = .now
                }
                return
            } catch let error as RedisError where error.source == .server && error.message.contains("cluster support") {
                throw RedisError(
                    source: .client, code: .invalidInput,
                    message: "\(node) is not a cluster node (\(error.message))", command: "CLUSTER")
            } catch {
                failures.append("\(node): \(error)")
            }
        }
        throw RedisError(
            source: .connection, code: .connect,
            message: "no node of the cluster answered CLUSTER SLOTS (\(failures.joined(separator: "; ")))",
            command: "CLUSTER")
    }

    private func pool(for node: RedisNodeAddress) throws -> RedisClient {
        let pool = state.withLockedValue { state -> RedisClient? in
            guard !state.closed else { return nil }
            if let pool = state.pools[node] { return pool }
            let pool = RedisClient(configuration: configuration.forNode(node), size: poolSize)
            state.pools[node] = pool
            return pool
        }
        guard let pool else {
            throw RedisError(source: .client, code: .invalidInput, message: "the cluster client is closed")
        }
        return pool
    }
}
