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
/// pool slot's queue, never across an `await`. The client may be called from any task; its state
/// is behind a lock.
///
/// ``RedisAsyncClusterClient`` is the same client on a reactor, over ``RedisAsyncClient``s; both
/// route with one implementation, so everything above holds for both.
public final class RedisClusterClient: Sendable {
    /// The nodes to read the first slot map from, credentials and timeouts.
    public var configuration: RedisConfiguration { router.configuration }
    /// Connections per node.
    public let poolSize: Int
    /// How many redirects and retries one call may take in all.
    public var maxRedirects: Int { router.maxRedirects }
    /// After a `MOVED`, the whole map is read again only if it is at least this old (a
    /// resharding moves many slots; one refresh learns them all).
    public var mapRefreshInterval: Duration { router.mapRefreshInterval }

    private let router: RedisClusterRouter<LockedClusterState<RedisClient>>

    /// - Parameters:
    ///   - configuration: every node listed is a place to read the slot map from; the database
    ///     must be 0 (a cluster has no other).
    ///   - poolSize: connections per node (opened lazily).
    ///   - maxRedirects: redirects and retries per call.
    public init(
        configuration: RedisConfiguration, poolSize: Int = 4, maxRedirects: Int = 5,
        mapRefreshInterval: Duration = .seconds(1)
    ) throws(RedisError) {
        try RedisClusterRouter<LockedClusterState<RedisClient>>.validate(
            configuration: configuration, connections: poolSize, maxRedirects: maxRedirects)
        self.poolSize = poolSize
        self.router = RedisClusterRouter(
            configuration: configuration, maxRedirects: maxRedirects, mapRefreshInterval: mapRefreshInterval,
            storage: LockedClusterState()
        ) { node in
            RedisClient(configuration: node, size: poolSize)
        }
    }

    /// Always `true`: one command or script may only touch keys of one hash slot, so batch
    /// operations written for both kinds of server make one call per slot.
    public var isCluster: Bool { true }

    // MARK: Commands

    /// Sends one command to the master serving its keys (see ``RedisClusterKeys``).
    ///
    /// - Throws: a client error before sending anything when the command is unknown to
    ///   ``RedisClusterKeys`` or its keys span slots; otherwise what ``RedisClient/send(_:timeout:)``
    ///   throws, after redirects and retries.
    @discardableResult
    public func send(_ command: RedisCommand, timeout: Duration? = nil) async throws -> RedisValue {
        try await router.send(command, timeout: timeout)
    }

    /// Sends one command given as arguments.
    @discardableResult
    public func send(_ arguments: any RedisArgument...) async throws -> RedisValue {
        try await router.send(RedisCommand(arguments), timeout: nil)
    }

    /// Sends one command whose keys the caller names (for a command ``RedisClusterKeys`` does not
    /// know); no keys means any master.
    @discardableResult
    public func send(_ command: RedisCommand, keys: [any RedisArgument], timeout: Duration? = nil) async throws
        -> RedisValue
    {
        try await router.send(command, keys: keys, timeout: timeout)
    }

    /// Runs a Lua script by SHA (loading it on `NOSCRIPT`, per node) on the master serving its keys.
    ///
    /// - Throws: a ``RedisError/Code/crossSlot`` client error, before sending, when the keys hash
    ///   to different slots.
    @discardableResult
    public func evaluate(
        _ script: RedisScript, keys: [any RedisArgument] = [], arguments: [any RedisArgument] = []
    ) async throws -> RedisValue {
        try await router.evaluate(script, keys: keys, arguments: arguments)
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
        try await router.pipeline(commands, timeout: nil)
    }

    // MARK: Slot map

    /// The slot map in use; `nil` until the first call (or ``refreshMap()``) has read one.
    public var map: RedisClusterMap? { router.map }

    /// How many times a whole slot map has been read (for metrics and tests).
    public var mapRefreshes: Int { router.mapRefreshes }

    /// The master serving `slot`, reading the map first if there is none yet.
    public func master(forSlot slot: Int) async throws -> RedisNodeAddress {
        try await router.master(forSlot: slot)
    }

    /// Reads the slot map again (`CLUSTER SLOTS`) from the first node that answers: the current
    /// map's nodes, then the configured ones. Concurrent calls share one read.
    ///
    /// - Throws: ``RedisError/Code/connect`` when no node answers; a client error when a node
    ///   answers that it is not in cluster mode.
    public func refreshMap() async throws {
        try await router.refreshMap()
    }

    /// Closes every node's connections; calls after this fail.
    public func close() async {
        await router.close()
    }
}
