import Dispatch
import LeaseholdReactor
import Synchronization

/// The client is closed (``PostgresClient/close()`` was called): it accepts no more work.
public struct PostgresClientClosedError: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "the PostgreSQL client is closed" }
}

/// A pool of ``PostgresConnection``s on one ``Reactor``: Leasehold's one PostgreSQL client,
/// for the worker's hot path as for a CLI command (see ``PostgresExecutor``).
///
/// ## Threading: no locks, by construction
///
/// The pool's state (idle connections, waiters) is only ever touched on the reactor's thread. A
/// call from a task that does not run there hops there first (`withTaskExecutorPreference`), so
/// any task may use the client; roles that share one reactor among their clients (the worker,
/// ingress) call it from tasks that prefer that reactor already and pay no hop. The reactor runs
/// one job at a time on one thread, so that state is touched between suspension points only and
/// needs no lock. The only code that runs elsewhere is a waiter's cancellation handler, which
/// hands its work to the reactor as a task. The bodies given to ``withConnection(_:)`` and
/// ``withTransaction(_:_:)`` run on the reactor too, so they must not block.
///
/// ## Reactor
///
/// Given one (``init(configuration:reactor:size:)``), the client runs on it and leaves it to its
/// owner. Without one (``init(configuration:size:label:)``), the client starts a reactor of its
/// own and shuts it down in ``close()``: the shape for a command or a service whose only I/O on
/// a reactor is this client.
///
/// ## Connections
///
/// At most ``size`` connections, opened lazily (non-blocking, on the reactor) when a borrower finds
/// a slot without one. A connection is lent to one task at a time; a task that finds none free
/// waits, first come first served, and is handed the next one returned. Before a connection is
/// lent it is checked (``PostgresConnection/isReusable()``): a connection lost to a server
/// restart or a `pg_terminate_backend`, or whose server turned out read-only (SQLSTATE 25006), is
/// closed and replaced, so such a failure costs the statement in flight, never the pool.
///
/// ## Cancellation
///
/// A task cancelled while waiting for a connection throws `CancellationError`; one cancelled while
/// a statement runs has the statement cancelled on the server (SQLSTATE 57014), and the
/// connection stays in the pool.
public final class PostgresClient: @unchecked Sendable {
    // @unchecked Sendable: the mutable state below is touched only on `reactor`'s thread (every
    // entry point preconditions it; cancellation handlers hop there in a task).

    public let configuration: PostgresConfiguration
    public let reactor: Reactor
    /// Whether ``close()`` shuts ``reactor`` down (the client started it).
    private let ownsReactor: Bool
    /// Set by the first ``close()``, on whatever thread it is called: calls after it fail at once,
    /// without hopping to a reactor that may have stopped.
    private let closeStarted = Atomic<Bool>(false)
    /// The maximum number of connections.
    public let size: Int

    /// One connection per slot, `nil` until opened (or after it was found broken).
    private var connections: [PostgresConnection?]
    /// Slots not lent out, the most recently returned last (reused first, so a light load keeps
    /// few connections busy and the rest are never opened).
    private var idle: [Int]
    private var waiters: [Waiter] = []
    private var nextWaiterID: UInt64 = 0
    private var lent = 0
    private var closed = false
    /// ``close()`` calls waiting for the lent connections to come back.
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Int, any Error>
    }

    /// - Parameters:
    ///   - size: the maximum number of connections (opened lazily); at least 1.
    ///   - reactor: the reactor every call of this client runs on.
    public convenience init(configuration: PostgresConfiguration, reactor: Reactor, size: Int = 4) {
        self.init(configuration: configuration, reactor: reactor, ownsReactor: false, size: size)
    }

    /// A client on a reactor of its own, started now (its thread named `label`) and shut down by
    /// ``close()``.
    ///
    /// - Parameter size: the maximum number of connections (opened lazily); at least 1.
    public convenience init(configuration: PostgresConfiguration, size: Int = 4, label: String = "leasehold.postgres") {
        self.init(configuration: configuration, reactor: Reactor(label: label), ownsReactor: true, size: size)
    }

    private init(configuration: PostgresConfiguration, reactor: Reactor, ownsReactor: Bool, size: Int) {
        precondition(size >= 1, "a pool needs at least one connection")
        self.configuration = configuration
        self.reactor = reactor
        self.ownsReactor = ownsReactor
        self.size = size
        self.connections = Array(repeating: nil, count: size)
        self.idle = Array((0..<size).reversed())
    }

    // MARK: Borrowing

    /// Runs `body` with one connection, lent to this task alone until `body` returns.
    ///
    /// Throws `CancellationError` when the task is cancelled before a connection is lent,
    /// `PostgresClientClosedError` after ``close()``, a ``PostgresError`` when no connection can be
    /// opened, or what `body` throws.
    public func withConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        if closeStarted.load(ordering: .acquiring) { throw PostgresClientClosedError() }
        guard isOnReactor else {
            return try await withTaskExecutorPreference(reactor) { try await onReactor(body) }
        }
        return try await onReactor(body)
    }

    /// Whether the calling task runs on the reactor's thread and prefers the reactor, so that it
    /// comes back there after every suspension. The thread alone is not enough: a task whose
    /// `withTaskExecutorPreference(reactor)` has just returned goes on on the reactor's thread
    /// until it next suspends, and resumes elsewhere after that.
    private var isOnReactor: Bool {
        guard reactor.isCurrent else { return false }
        let preferred = reactor.asUnownedTaskExecutor()
        return withUnsafeCurrentTask { $0?.unownedTaskExecutor == preferred }
    }

    /// ``withConnection(_:)`` once on the reactor.
    private func onReactor<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        precondition(reactor.isCurrent, "PostgresClient used off its reactor's thread")
        let index = try await checkout()
        defer { checkin(index) }
        let connection = try await lend(index)
        try Task.checkCancellation()
        return try await body(connection)
    }

    /// Runs one statement.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await withConnection { try await $0.query(query) }
    }

    /// Runs one statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ query: PostgresQuery) async throws -> Int {
        try await withConnection { try await $0.execute(query) }
    }

    /// Runs one statement as the prepared statement `name` of the connection it is lent (see
    /// ``PostgresConnection/query(_:preparedAs:)``).
    @discardableResult
    public func query(_ query: PostgresQuery, preparedAs name: String) async throws -> PostgresRows {
        try await withConnection { try await $0.query(query, preparedAs: name) }
    }

    /// Runs fixed SQL text, possibly several statements (see
    /// ``PostgresConnection/simpleQuery(_:)``).
    @discardableResult
    public func simpleQuery(_ sql: String) async throws -> PostgresRows {
        try await withConnection { try await $0.simpleQuery(sql) }
    }

    /// Runs `body` in one transaction on one connection (see
    /// ``PostgresConnection/withTransaction(_:_:)``). Throws ``PostgresTransactionError`` for
    /// everything after a connection was lent.
    public func withTransaction<T>(
        _ options: PostgresTransactionOptions = PostgresTransactionOptions(),
        _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withConnection { connection in try await connection.withTransaction(options, body) }
    }

    /// Opens connections now, all at once, until `count` slots (at most ``size``) have one, instead
    /// of one by one on first use: a service about to take work calls it at startup, so its first
    /// burst does not wait for backends to start (a cold pool put 200 ms on the first second of a
    /// paced load test). Slots lent out meanwhile are left alone; a connection that cannot be
    /// opened now is opened on first use, as always. Returns how many connections are open.
    ///
    /// `warmUp`, when given, runs on each connection this call opens, before any is lent: the
    /// place for work every connection would otherwise do on its first use under load (the
    /// worker compiles and plans its PL/pgSQL functions there). Its errors are its own business:
    /// the connection is kept either way (``lend(_:)`` checks it before lending it).
    @discardableResult
    public func open(
        _ count: Int, warmingUp warmUp: (@Sendable (PostgresConnection) async -> Void)? = nil
    ) async -> Int {
        if closeStarted.load(ordering: .acquiring) { return 0 }
        guard isOnReactor else {
            return await withTaskExecutorPreference(reactor) { await open(count, warmingUp: warmUp) }
        }
        guard !closed else { return 0 }
        var taken: [Int] = []
        while taken.count < min(count, size), let index = idle.popLast() {
            lent += 1
            taken.append(index)
        }
        // Child tasks keep this task's preference for the reactor: the connections open side by
        // side on its thread.
        await withTaskGroup(of: Void.self) { group in
            for index in taken where connections[index] == nil {
                group.addTask {
                    guard let connection = try? await self.lend(index) else { return }
                    await warmUp?(connection)
                }
            }
        }
        for index in taken.reversed() { checkin(index) }
        return connections.lazy.compactMap { $0 }.count
    }

    /// Stops lending connections, fails every waiter, waits for the lent connections to come back
    /// and closes every connection. Calls after this throw `PostgresClientClosedError`. A client
    /// that started its own reactor then shuts it down: such a client must not be closed from a
    /// task that prefers its reactor.
    public func close() async {
        let first = !closeStarted.exchange(true, ordering: .acquiringAndReleasing)
        // A client on a reactor of its own: only the first call closes it (the reactor is gone after).
        if ownsReactor && !first { return }
        if isOnReactor {
            await closeOnReactor()
        } else {
            await withTaskExecutorPreference(reactor) { await closeOnReactor() }
        }
        guard ownsReactor else { return }
        // Reactor.shutDown() blocks until the thread has exited: not on the cooperative pool.
        let reactor = reactor
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                reactor.shutDown()
                done.resume()
            }
        }
    }

    private func closeOnReactor() async {
        precondition(reactor.isCurrent, "PostgresClient.close() off its reactor's thread")
        closed = true
        let failed = waiters
        waiters.removeAll()
        for waiter in failed { waiter.continuation.resume(throwing: PostgresClientClosedError()) }
        if lent > 0 {
            await withCheckedContinuation { closeWaiters.append($0) }
        }
        for index in connections.indices {
            connections[index]?.close()
            connections[index] = nil
        }
    }

    // MARK: Slots

    private func checkout() async throws -> Int {
        if closed { throw PostgresClientClosedError() }
        try Task.checkCancellation()
        if let index = idle.popLast() {
            lent += 1
            return index
        }
        nextWaiterID += 1
        let id = nextWaiterID
        let index = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
                waiters.append(Waiter(id: id, continuation: continuation))
            }
        } onCancel: {
            // Any thread (the one that cancels the task): the waiter list belongs to the reactor.
            Task(executorPreference: reactor) { self.cancelWaiter(id) }
        }
        // `checkin` counted the slot as lent when it handed it over.
        return index
    }

    /// Reactor thread. A waiter that was handed a slot already is not in the list any more.
    private func cancelWaiter(_ id: UInt64) {
        precondition(reactor.isCurrent)
        guard let position = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: position).continuation.resume(throwing: CancellationError())
    }

    /// Returns a slot: straight to the first waiter if there is one (it stays lent), else idle.
    private func checkin(_ index: Int) {
        precondition(reactor.isCurrent)
        if closed {
            connections[index]?.close()
            connections[index] = nil
        }
        if !waiters.isEmpty {
            waiters.removeFirst().continuation.resume(returning: index)
            return
        }
        idle.append(index)
        lent -= 1
        if lent == 0 && closed {
            let waiting = closeWaiters
            closeWaiters.removeAll()
            for waiter in waiting { waiter.resume() }
        }
    }

    /// The slot's connection, checked, replaced or opened as needed.
    private func lend(_ index: Int) async throws -> PostgresConnection {
        if let existing = connections[index] {
            if await existing.isReusable() { return existing }
            existing.close()
            connections[index] = nil
        }
        let connection = try await PostgresConnection.connect(configuration: configuration, reactor: reactor)
        if closed {
            // The pool closed while this connection was opening: it must not outlive the pool.
            connection.close()
            throw PostgresClientClosedError()
        }
        connections[index] = connection
        return connection
    }
}
