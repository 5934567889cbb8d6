import LeaseholdReactor

/// A Redis Cluster client on a ``Reactor``, with one ``RedisClient`` per node, so a Redis
/// Cluster deployment keeps its hot paths (enqueues, leases, completions) off thread pools.
/// ``RedisClient`` fronts it when given several nodes; code is written against either.
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
/// One ``RedisClient`` per node, on this client's reactor, created when a node is first used
/// and kept until ``close()``; each node is reached with the configuration's credentials and
/// timeouts.
///
/// ## Threading: no locks, by construction
///
/// As with ``RedisClient``: the slot map, the per-node clients and the map read in progress
/// are touched only on the reactor's thread, so they need no lock. A call from a task not on the
/// reactor hops onto it for its duration. The client may be created on any thread; the slot map's
/// properties (``map``, ``mapRefreshes``) and ``close()`` are for the reactor's thread only.
///
/// ## Pipelining
///
/// Each node's ``RedisClient`` sends every caller's command on a shared connection, and the
/// commands queued during one reactor turn leave in one write: concurrent callers whose keys are
/// on the same node share round trips, with no batching of their own. `ASKING` and the command it
/// is for are queued back to back (a two-command pipeline), so nothing comes between them.
///
/// Blocking commands (`XREADGROUP … BLOCK`, `BLPOP`) hold up every command behind them on their
/// node's connection: give them a client of their own.
public final class RedisClusterClient: Sendable {
    /// The reactor every call of this client runs on.
    public let reactor: Reactor
    /// Connections per node (``RedisClient/size``).
    public let connectionsPerNode: Int
    /// The nodes to read the first slot map from, credentials and timeouts.
    public var configuration: RedisConfiguration { router.configuration }
    /// How many redirects and retries one call may take in all.
    public var maxRedirects: Int { router.maxRedirects }
    /// After a `MOVED`, the whole map is read again only if it is at least this old.
    public var mapRefreshInterval: Duration { router.mapRefreshInterval }

    private let router: RedisClusterRouter<ReactorClusterState<RedisClient>>

    /// - Parameters:
    ///   - configuration: every node listed is a place to read the slot map from; the database
    ///     must be 0 (a cluster has no other).
    ///   - reactor: the reactor every call of this client runs on.
    ///   - connectionsPerNode: connections per node (opened lazily); one is usually the cheapest
    ///     (see ``RedisClient``).
    ///   - maxRedirects: redirects and retries per call.
    public init(
        configuration: RedisConfiguration, reactor: Reactor, connectionsPerNode: Int = 1, maxRedirects: Int = 5,
        mapRefreshInterval: Duration = .seconds(1)
    ) throws(RedisError) {
        try RedisClusterRouter<ReactorClusterState<RedisClient>>.validate(
            configuration: configuration, connections: connectionsPerNode, maxRedirects: maxRedirects)
        self.reactor = reactor
        self.connectionsPerNode = connectionsPerNode
        self.router = RedisClusterRouter(
            configuration: configuration, maxRedirects: maxRedirects, mapRefreshInterval: mapRefreshInterval,
            storage: ReactorClusterState(reactor: reactor)
        ) { node in
            RedisClient(configuration: node, reactor: reactor, size: connectionsPerNode)
        }
    }

    /// Always `true`: one command or script may only touch keys of one hash slot, so batch
    /// operations written for both kinds of server make one call per slot.
    public var isCluster: Bool { true }

    // MARK: Commands

    /// Sends one command to the master serving its keys (see ``RedisClusterKeys``).
    ///
    /// - Throws: a client error before sending anything when the command is unknown to
    ///   ``RedisClusterKeys`` or its keys span slots; otherwise what
    ///   ``RedisClient/send(_:timeout:)`` throws, after redirects and retries.
    @discardableResult
    public func send(_ command: RedisCommand, timeout: Duration? = nil) async throws -> RedisValue {
        guard reactor.isCurrent else { return try await onReactor { try await $0.send(command, timeout: timeout) } }
        return try await router.send(command, timeout: timeout)
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
        guard reactor.isCurrent else {
            return try await onReactor { try await $0.send(command, keys: keys, timeout: timeout) }
        }
        return try await router.send(command, keys: keys, timeout: timeout)
    }

    /// Runs a Lua script by SHA (loading it on `NOSCRIPT`, per node) on the master serving its keys.
    ///
    /// - Throws: a ``RedisError/Code/crossSlot`` client error, before sending, when the keys hash
    ///   to different slots.
    @discardableResult
    public func evaluate(
        _ script: RedisScript, keys: [any RedisArgument] = [], arguments: [any RedisArgument] = []
    ) async throws -> RedisValue {
        guard reactor.isCurrent else {
            return try await onReactor { try await $0.evaluate(script, keys: keys, arguments: arguments) }
        }
        return try await router.evaluate(script, keys: keys, arguments: arguments)
    }

    /// Sends the commands split per node, one pipeline per node, the nodes' pipelines queued in
    /// the same reactor turn; replies in the order of `commands`, error replies in place.
    ///
    /// The commands may span slots and nodes (each command's own keys must share a slot).
    /// Commands for one node go back to back on one connection, in their order; commands for
    /// different nodes run concurrently, in no order relative to each other. A command redirected
    /// (`MOVED`, `ASK`) or told to try again is sent again on its own after its batch, as
    /// ``send(_:timeout:)`` would.
    ///
    /// - Parameter timeout: bound on each node's last reply; `nil` uses the configured
    ///   `commandTimeout`.
    /// - Throws: a client error, before sending anything, for a command whose keys are unknown or
    ///   span slots; a connection error if a node's batch failed after it was sent (the replies of
    ///   the other nodes are then lost, and that batch's outcome is unknown).
    public func pipeline(_ commands: [RedisCommand], timeout: Duration? = nil) async throws -> [RedisValue] {
        guard reactor.isCurrent else {
            return try await onReactor { try await $0.pipeline(commands, timeout: timeout) }
        }
        return try await router.pipeline(commands, timeout: timeout)
    }

    /// Sends every command back to back on one connection of the master serving `keys`' slot,
    /// whatever keys the commands name (or none: `CLIENT ID`, `WAIT`, which must reach the node
    /// that took a write). Replies in order, error replies in place; a redirect among them comes
    /// back as its error reply, not followed.
    public func pipeline(_ commands: [RedisCommand], routedBy keys: [any RedisArgument], timeout: Duration? = nil)
        async throws -> [RedisValue]
    {
        guard reactor.isCurrent else {
            return try await onReactor { try await $0.pipeline(commands, routedBy: keys, timeout: timeout) }
        }
        return try await router.pipeline(commands, routedBy: keys, timeout: timeout)
    }

    /// Runs `body` on the reactor, for a call made from a task that is not on it.
    private func onReactor<T: Sendable>(_ body: (RedisClusterClient) async throws -> T) async throws -> T {
        try await withTaskExecutorPreference(reactor) { try await body(self) }
    }

    // MARK: Slot map

    /// The slot map in use; `nil` until the first call (or ``refreshMap()``) has read one.
    /// On the reactor's thread only.
    public var map: RedisClusterMap? { router.map }

    /// How many times a whole slot map has been read (for metrics and tests). On the reactor's
    /// thread only.
    public var mapRefreshes: Int { router.mapRefreshes }

    /// The master serving `slot`, reading the map first if there is none yet.
    public func master(forSlot slot: Int) async throws -> RedisNodeAddress {
        guard reactor.isCurrent else { return try await onReactor { try await $0.master(forSlot: slot) } }
        return try await router.master(forSlot: slot)
    }

    /// Reads the slot map again (`CLUSTER SLOTS`) from the first node that answers: the current
    /// map's nodes, then the configured ones. Concurrent calls share one read.
    ///
    /// - Throws: ``RedisError/Code/connect`` when no node answers; a client error when a node
    ///   answers that it is not in cluster mode.
    public func refreshMap() async throws {
        guard reactor.isCurrent else { return try await onReactor { try await $0.refreshMap() } }
        try await router.refreshMap()
    }

    /// Closes every node's connections (callers still waiting get a connection error, their
    /// commands' outcome unknown); calls after this fail.
    public func close() {
        precondition(reactor.isCurrent, "RedisClusterClient.close() off its reactor's thread")
        for node in router.detachNodes() { node.close() }
    }
}
