import LeaseholdReactor

/// A few ``RedisAsyncConnection``s on one ``Reactor``: the async counterpart of ``RedisClient``,
/// with the same commands, replies and errors, and no thread hand-off per command.
///
/// ## Threading: no locks, by construction
///
/// Every method must be called from a task running on the client's reactor
/// (`withTaskExecutorPreference(reactor)`), and checks it with a precondition. The reactor runs
/// one job at a time on one thread, so the client's state is only ever touched by that thread and
/// needs no lock.
///
/// ## Connections and pipelining
///
/// A Redis connection answers in order, so it is not lent to one caller at a time: every caller
/// sends on a shared connection and waits for its own reply, and the commands queued during one
/// reactor turn leave in one write (see ``RedisAsyncConnection``). Concurrent callers therefore
/// share round trips without any batching of their own. Commands go to the ``size`` connections
/// in turn; one connection is usually the cheapest (the most commands per write and per read), a
/// second helps only when one socket's round trip is the bound. Connections are opened lazily;
/// callers arriving while one is being opened wait for it. A connection that failed (I/O error,
/// timeout) or that the server closed while idle is replaced by the next command that picks it,
/// so a Redis restart costs the commands in flight, never the client.
///
/// Blocking commands (`XREADGROUP … BLOCK`, `BLPOP`) hold up every command behind them on their
/// connection: give them a client of their own.
///
/// ## A Redis Cluster
///
/// Given a configuration that lists several nodes (``RedisConfiguration/listsSeveralNodes``), the
/// client is a ``RedisAsyncClusterClient`` underneath, on the same reactor: every call goes to the
/// master of its keys' slot, with `size` connections per node (the pipelining above holds per
/// node), and ``isCluster`` is `true`. Code written against this client runs unchanged on one node
/// or a cluster, as long as each command or script keeps to one hash slot.
///
/// ## Cancellation
///
/// A task cancelled before its command is queued gets `CancellationError` and sends nothing
/// (also while it waits for a connection to open). Once queued, the command runs its course: the
/// call returns its reply or error within its timeout (see ``RedisAsyncConnection``).
public final class RedisAsyncClient: @unchecked Sendable {
    // @unchecked Sendable: the mutable state below is touched only on `reactor`'s thread (every
    // entry point preconditions it).

    public let configuration: RedisConfiguration
    public let reactor: Reactor
    /// The number of connections.
    public let size: Int

    private var connections: [RedisAsyncConnection?]
    /// Per slot, the callers waiting for a connection being opened (`nil`: none being opened).
    private var opening: [[CheckedContinuation<RedisAsyncConnection, any Error>]?]
    private var next = 0
    private var closed = false
    /// Set when the configuration lists several nodes: every call goes through it instead.
    private let cluster: RedisAsyncClusterClient?

    /// - Parameters:
    ///   - configuration: one node; or the nodes of a Redis Cluster (see "A Redis Cluster").
    ///   - reactor: the reactor every call of this client runs on.
    ///   - size: the number of connections (opened lazily; per node on a cluster); at least 1.
    public init(configuration: RedisConfiguration, reactor: Reactor, size: Int = 1) {
        precondition(size >= 1, "a client needs at least one connection")
        self.configuration = configuration
        self.reactor = reactor
        self.size = size
        self.connections = Array(repeating: nil, count: size)
        self.opening = Array(repeating: nil, count: size)
        if configuration.listsSeveralNodes {
            do {
                self.cluster = try RedisAsyncClusterClient(
                    configuration: configuration, reactor: reactor, connectionsPerNode: size)
            } catch {
                // `RedisConfiguration(url:)` refuses what the cluster client would (a database other
                // than 0 with several nodes); only a configuration built by hand can get here.
                preconditionFailure("a cluster configuration the cluster client refuses: \(error)")
            }
        } else {
            self.cluster = nil
        }
    }

    /// Whether the configuration lists the nodes of a Redis Cluster: then every call is routed
    /// by its keys' hash slot through a ``RedisAsyncClusterClient`` (with `size` connections per
    /// node), and a command or script may only touch keys of one slot.
    public var isCluster: Bool { cluster != nil }

    // MARK: Commands

    /// Sends one command; see ``RedisAsyncConnection/send(_:timeout:)``.
    @discardableResult
    public func send(_ command: RedisCommand, timeout: Duration? = nil) async throws -> RedisValue {
        if let cluster { return try await cluster.send(command, timeout: timeout) }
        return try await connection().send(command, timeout: timeout)
    }

    /// Sends one command given as arguments.
    @discardableResult
    public func send(_ arguments: any RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(arguments))
    }

    /// Sends every command back to back on one connection; replies in order, error replies in
    /// place. See ``RedisAsyncConnection/pipeline(_:timeout:)``.
    public func pipeline(_ commands: [RedisCommand], timeout: Duration? = nil) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        // On a cluster: split per node, replies in the order of `commands`.
        if let cluster { return try await cluster.pipeline(commands, timeout: timeout) }
        return try await connection().pipeline(commands, timeout: timeout)
    }

    /// ``pipeline(_:timeout:)`` on the connection that serves `keys`: on a cluster, every command
    /// goes to the master of `keys`' slot, on one connection, whatever keys the commands name (see
    /// ``RedisAsyncClusterClient/pipeline(_:routedBy:timeout:)``); on one node, the same as
    /// ``pipeline(_:timeout:)``.
    public func pipeline(_ commands: [RedisCommand], routedBy keys: [any RedisArgument], timeout: Duration? = nil)
        async throws -> [RedisValue]
    {
        guard !commands.isEmpty else { return [] }
        if let cluster { return try await cluster.pipeline(commands, routedBy: keys, timeout: timeout) }
        return try await connection().pipeline(commands, timeout: timeout)
    }

    /// Runs a Lua script by SHA (`EVALSHA`), loading it on `NOSCRIPT` (`SCRIPT LOAD`, then
    /// `EVALSHA` again, then `EVAL` if it was flushed once more in between).
    @discardableResult
    public func evaluate(
        _ script: RedisScript, keys: [any RedisArgument] = [], arguments: [any RedisArgument] = []
    ) async throws -> RedisValue {
        if let cluster { return try await cluster.evaluate(script, keys: keys, arguments: arguments) }
        return try await RedisScriptRunner.evaluate(script, keys: keys, arguments: arguments) { command in
            try await self.send(command)
        }
    }

    /// Closes every connection (callers still waiting get a connection error, their commands'
    /// outcome unknown). Calls after this throw ``RedisError/Code/connect``.
    public func close() {
        precondition(reactor.isCurrent, "RedisAsyncClient.close() off its reactor's thread")
        cluster?.close()
        closed = true
        for index in connections.indices {
            connections[index]?.close()
            connections[index] = nil
        }
    }

    // MARK: Connections

    /// The next connection in turn, opened or replaced as needed.
    private func connection() async throws -> RedisAsyncConnection {
        precondition(reactor.isCurrent, "RedisAsyncClient used off its reactor's thread")
        try Task.checkCancellation()
        guard !closed else {
            throw RedisError(source: .connection, code: .connect, message: "the Redis client is closed")
        }
        let index = next
        next = next + 1 == size ? 0 : next + 1
        if let existing = connections[index] {
            if existing.isReusable() { return existing }
            connections[index] = nil
        }
        if opening[index] != nil {
            return try await withCheckedThrowingContinuation { opening[index]?.append($0) }
        }
        opening[index] = []
        let result: Result<RedisAsyncConnection, any Error>
        do {
            result = .success(try await RedisAsyncConnection.connect(configuration: configuration, reactor: reactor))
        } catch {
            result = .failure(error)
        }
        let waiting = opening[index] ?? []
        opening[index] = nil
        if case .success(let connection) = result {
            if closed {
                connection.close()
                let error = RedisError(source: .connection, code: .connect, message: "the Redis client is closed")
                for waiter in waiting { waiter.resume(throwing: error) }
                throw error
            }
            connections[index] = connection
        }
        for waiter in waiting {
            if case .failure(let error) = result, error is CancellationError {
                // The opener was cancelled, not they: nothing of theirs was sent.
                waiter.resume(
                    throwing: RedisError(
                        source: .connection, code: .connect,
                        message: "the connection being opened was abandoned by a cancelled task; try again"))
            } else {
                waiter.resume(with: result)
            }
        }
        return try result.get()
    }
}
