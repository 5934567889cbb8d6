import Dispatch
import LeaseholdReactor
import Synchronization

/// A few ``RedisConnection``s on one ``Reactor``: the Redis client of every role and tool,
/// with no thread hand-off per command (see ``RedisCommandRunner`` for what code is written against).
///
/// ## Threading: no locks, by construction
///
/// The client's state is only ever touched on its reactor's thread, which runs one job at a time,
/// so it needs no lock. A call from a task that runs on the reactor
/// (`withTaskExecutorPreference(reactor)`: the worker, ingress) goes straight to the socket; a
/// call from any other task hops onto the reactor for its duration and back, which costs two
/// thread switches, as a blocking pool's hand-off did. Code that makes many calls in a row (the
/// supervisor's passes) runs them on the reactor itself (``withReactor(_:)``) and pays no hop.
///
/// ## A reactor of its own
///
/// ``init(configuration:size:label:)`` starts a ``Reactor`` for the client alone and stops it in
/// ``close()``: what a command-line tool, the console or the supervisor needs, which share no
/// reactor with anything. Roles that already run on one (worker, ingress) pass theirs.
///
/// ## Connections and pipelining
///
/// A Redis connection answers in order, so it is not lent to one caller at a time: every caller
/// sends on a shared connection and waits for its own reply, and the commands queued during one
/// reactor turn leave in one write (see ``RedisConnection``). Concurrent callers therefore
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
/// client is a ``RedisClusterClient`` underneath, on the same reactor: every call goes to the
/// master of its keys' slot, with `size` connections per node (the pipelining above holds per
/// node), and ``isCluster`` is `true`. Code written against this client runs unchanged on one node
/// or a cluster, as long as each command or script keeps to one hash slot.
///
/// ## Cancellation
///
/// A task cancelled before its command is queued gets `CancellationError` and sends nothing
/// (also while it waits for a connection to open). Once queued, the command runs its course: the
/// call returns its reply or error within its timeout (see ``RedisConnection``).
public final class RedisClient: @unchecked Sendable {
    // @unchecked Sendable: the mutable state below is touched only on `reactor`'s thread (every
    // entry point hops there first, and `connection()` preconditions it).

    public let configuration: RedisConfiguration
    public let reactor: Reactor
    /// The number of connections.
    public let size: Int

    private var connections: [RedisConnection?]
    /// Per slot, the callers waiting for a connection being opened (`nil`: none being opened).
    private var opening: [[CheckedContinuation<RedisConnection, any Error>]?]
    private var next = 0
    private var closed = false
    /// Set when the configuration lists several nodes: every call goes through it instead.
    private let cluster: RedisClusterClient?
    /// Whether the client started `reactor` (and stops it in ``close()``).
    private let ownsReactor: Bool

    /// - Parameters:
    ///   - configuration: one node; or the nodes of a Redis Cluster (see "A Redis Cluster").
    ///   - reactor: the reactor every call of this client runs on.
    ///   - size: the number of connections (opened lazily; per node on a cluster); at least 1.
    public convenience init(configuration: RedisConfiguration, reactor: Reactor, size: Int = 1) {
        self.init(configuration: configuration, reactor: reactor, size: size, ownsReactor: false)
    }

    /// A client on a reactor of its own, started here and stopped by ``close()``.
    ///
    /// - Parameters:
    ///   - configuration: one node; or the nodes of a Redis Cluster (see "A Redis Cluster").
    ///   - size: the number of connections (opened lazily; per node on a cluster); at least 1.
    ///   - label: the reactor thread's name.
    public convenience init(configuration: RedisConfiguration, size: Int = 1, label: String = "leasehold.redis") {
        self.init(configuration: configuration, reactor: Reactor(label: label), size: size, ownsReactor: true)
    }

    private init(configuration: RedisConfiguration, reactor: Reactor, size: Int, ownsReactor: Bool) {
        precondition(size >= 1, "a client needs at least one connection")
        self.configuration = configuration
        self.reactor = reactor
        self.ownsReactor = ownsReactor
        self.size = size
        self.connections = Array(repeating: nil, count: size)
        self.opening = Array(repeating: nil, count: size)
        if configuration.listsSeveralNodes {
            do {
                self.cluster = try RedisClusterClient(
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
    /// by its keys' hash slot through a ``RedisClusterClient`` (with `size` connections per
    /// node), and a command or script may only touch keys of one slot.
    public var isCluster: Bool { cluster != nil }

    /// The configuration of the node that serves `key`: this client's own on one node, the
    /// master of the key's slot on a cluster (for a short-lived connection of one's own).
    public func configuration(forKey key: some RedisArgument) async throws -> RedisConfiguration {
        guard let cluster else { return configuration }
        return configuration.forNode(try await cluster.master(forSlot: RedisClusterSlot.slot(for: key)))
    }

    // MARK: Commands

    /// Sends one command; see ``RedisConnection/send(_:timeout:)``.
    @discardableResult
    public func send(_ command: RedisCommand, timeout: Duration? = nil) async throws -> RedisValue {
        guard reactor.isCurrent else { return try await withReactor { try await $0.send(command, timeout: timeout) } }
        if let cluster { return try await cluster.send(command, timeout: timeout) }
        return try await connection().send(command, timeout: timeout)
    }

    /// Sends one command given as arguments.
    @discardableResult
    public func send(_ arguments: any RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(arguments))
    }

    /// Sends every command back to back on one connection; replies in order, error replies in
    /// place. See ``RedisConnection/pipeline(_:timeout:)``.
    public func pipeline(_ commands: [RedisCommand], timeout: Duration? = nil) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        guard reactor.isCurrent else {
            return try await withReactor { try await $0.pipeline(commands, timeout: timeout) }
        }
        // On a cluster: split per node, replies in the order of `commands`.
        if let cluster { return try await cluster.pipeline(commands, timeout: timeout) }
        return try await connection().pipeline(commands, timeout: timeout)
    }

    /// ``pipeline(_:timeout:)`` on the connection that serves `keys`: on a cluster, every command
    /// goes to the master of `keys`' slot, on one connection, whatever keys the commands name (see
    /// ``RedisClusterClient/pipeline(_:routedBy:timeout:)``); on one node, the same as
    /// ``pipeline(_:timeout:)``.
    public func pipeline(_ commands: [RedisCommand], routedBy keys: [any RedisArgument], timeout: Duration? = nil)
        async throws -> [RedisValue]
    {
        guard !commands.isEmpty else { return [] }
        guard reactor.isCurrent else {
            return try await withReactor { try await $0.pipeline(commands, routedBy: keys, timeout: timeout) }
        }
        if let cluster { return try await cluster.pipeline(commands, routedBy: keys, timeout: timeout) }
        return try await connection().pipeline(commands, timeout: timeout)
    }

    /// Runs a Lua script by SHA (`EVALSHA`), loading it on `NOSCRIPT` (`SCRIPT LOAD`, then
    /// `EVALSHA` again, then `EVAL` if it was flushed once more in between).
    @discardableResult
    public func evaluate(
        _ script: RedisScript, keys: [any RedisArgument] = [], arguments: [any RedisArgument] = []
    ) async throws -> RedisValue {
        guard reactor.isCurrent else {
            return try await withReactor { try await $0.evaluate(script, keys: keys, arguments: arguments) }
        }
        if let cluster { return try await cluster.evaluate(script, keys: keys, arguments: arguments) }
        return try await RedisScriptRunner.evaluate(script, keys: keys, arguments: arguments) { command in
            try await self.send(command)
        }
    }

    /// Sends one command and waits for its reply on the calling thread: for code that must be
    /// synchronous because something else calls it so (a PostgreSQL transaction's body, a
    /// readiness probe run on a thread of its own). The command runs in a task on the reactor,
    /// never on Swift's cooperative threads, so the wait cannot starve what would answer it; it is
    /// bounded by the command timeout. Never call it on the reactor's thread (it would wait for
    /// itself), and avoid it on a cooperative thread, which it holds for the round trip.
    public func sendWaiting(_ command: RedisCommand, timeout: Duration? = nil) throws -> RedisValue {
        precondition(!reactor.isCurrent, "RedisClient.sendWaiting on its reactor would wait for itself")
        let outcome = Mutex<Result<RedisValue, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task(executorPreference: reactor) {
            let result: Result<RedisValue, any Error>
            do { result = .success(try await self.send(command, timeout: timeout)) } catch { result = .failure(error) }
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return try outcome.withLock { $0! }.get()
    }

    /// Runs `body` on the client's reactor (``Reactor``'s task-executor preference, inherited by
    /// its child tasks), so that its calls go straight to the sockets with no hop each; from a
    /// task already there, simply runs it.
    public func withReactor<T: Sendable>(_ body: (RedisClient) async throws -> T) async throws -> T {
        if reactor.isCurrent { return try await body(self) }
        return try await withTaskExecutorPreference(reactor) { try await body(self) }
    }

    /// Closes every connection (callers still waiting get a connection error, their commands'
    /// outcome unknown). Calls after this throw ``RedisError/Code/connect``. A client with a
    /// reactor of its own also stops that reactor (call it then from a task not on that reactor,
    /// once every call has returned). Off the reactor's thread, the client on a shared reactor
    /// closes its connections on that reactor a moment later.
    public func close() {
        guard reactor.isCurrent else {
            reactor.execute(afterPendingJobs: { self.closeConnections() })
            if ownsReactor { reactor.shutDown() }
            return
        }
        precondition(!ownsReactor, "RedisClient.close() on the reactor it owns would wait for itself")
        closeConnections()
    }

    private func closeConnections() {
        cluster?.close()
        closed = true
        for index in connections.indices {
            connections[index]?.close()
            connections[index] = nil
        }
    }

    // MARK: Connections

    /// The next connection in turn, opened or replaced as needed.
    private func connection() async throws -> RedisConnection {
        precondition(reactor.isCurrent, "RedisClient used off its reactor's thread")
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
        let result: Result<RedisConnection, any Error>
        do {
            result = .success(try await RedisConnection.connect(configuration: configuration, reactor: reactor))
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
