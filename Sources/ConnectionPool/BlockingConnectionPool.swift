import Dispatch
import NIOConcurrencyHelpers

/// A connection to a server through a blocking C client (libpq's `PGconn`, hiredis's `redisContext`).
///
/// Conforming types are deliberately **not** `Sendable`: an instance is only ever touched by the
/// ``BlockingConnectionPool`` slot that owns it, on that slot's own thread.
public protocol BlockingConnection: AnyObject, SendableMetatype {
    /// Called on the owning thread before the connection is lent out. Return `false` when the
    /// connection is broken (server restarted, I/O error): the pool closes it and opens a new one.
    func isReusable() -> Bool

    /// Releases the C handle. Called exactly once, on the owning thread.
    func close()

    /// A thread-safe way to interrupt the call in progress from another thread (libpq's
    /// `PQcancel`), or `nil` when the client has none. Read on the owning thread at the start of
    /// each job; invoked from whatever thread cancels the waiting task.
    var interrupter: (any ConnectionInterrupter)? { get }
}

/// Interrupts a blocking call of a ``BlockingConnection`` from another thread.
public protocol ConnectionInterrupter: Sendable {
    func interrupt()
}

/// The pool is closed: no more work is accepted.
public struct ConnectionPoolClosedError: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "connection pool is closed" }
}

/// A fixed-size pool of blocking connections, each owned by its own serial `DispatchQueue`.
///
/// ## How the concurrency rule is guaranteed
///
/// *A connection is used by one thread at a time, never across an `await`, and blocking C calls
/// never run on Swift's cooperative pool.* The pool enforces this by construction:
///
/// - Every connection lives inside a `Slot` together with a private serial `DispatchQueue`. The
///   connection is created, used and closed only by blocks submitted to that queue. Serial queues
///   run on libdispatch's overcommitting worker threads, not on the width-limited cooperative
///   executor that runs Swift tasks, so a blocking `PQexec` or `redisGetReply` cannot starve it.
/// - A slot is lent to one borrower at a time (the lock-guarded idle list); a borrower submits
///   exactly one block, waits for it, and returns the slot. So at most one block per connection is
///   ever queued, and the connection is never touched concurrently.
/// - The work is a **synchronous** closure: it cannot `await`, so it cannot suspend while holding
///   the connection, and the connection type is not `Sendable`, so it cannot escape the closure
///   into another task. The closure's result must be `Sendable`: C memory is copied into Swift
///   values before the closure returns.
///
/// Connections are opened lazily, on the slot's queue, and replaced whenever
/// ``BlockingConnection/isReusable()`` says so, so a server restart costs at most the call in
/// flight, never the pool.
public final class BlockingConnectionPool<Connection: BlockingConnection>: Sendable {
    /// Opens a new connection. Runs on a slot's own queue, so it may block.
    public typealias Factory = @Sendable () throws -> Connection

    private let factory: Factory
    private let state: NIOLockedValueBox<State>
    private let slots: [Slot]

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Int, any Error>
    }

    private struct State {
        var idle: [Int]
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
        var closed = false
    }

    /// - Parameters:
    ///   - size: the number of connections (and dedicated queues); at least 1.
    ///   - label: a prefix for the queues' labels, visible in debuggers and crash logs.
    ///   - factory: opens one connection; called lazily and again after a broken connection.
    public init(size: Int, label: String, factory: @escaping Factory) {
        precondition(size >= 1, "a pool needs at least one connection")
        self.factory = factory
        self.slots = (0..<size).map { Slot(queue: DispatchQueue(label: "\(label).\($0)")) }
        self.state = NIOLockedValueBox(State(idle: Array((0..<size).reversed())))
    }

    /// The number of connections in the pool.
    public var size: Int { slots.count }

    /// Runs `body` with a connection, on that connection's own thread.
    ///
    /// Waits for a free connection first. If the task is cancelled while `body` runs and the
    /// connection has an ``BlockingConnection/interrupter``, the call in progress is interrupted
    /// (for PostgreSQL: the running statement is cancelled and fails with SQLSTATE 57014).
    public func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (Connection) throws -> T
    ) async throws -> T {
        let index = try await checkout()
        defer { checkin(index) }
        try Task.checkCancellation()
        let slot = slots[index]
        let factory = self.factory
        let call = Call()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                slot.queue.async {
                    continuation.resume(with: Result { try slot.run(call, factory: factory, body) })
                }
            }
        } onCancel: {
            call.cancel()
        }
    }

    /// Stops lending connections, fails every waiter and closes every connection.
    /// Waits for calls in progress to finish first.
    public func close() async {
        let waiters = state.withLockedValue { state -> [Waiter] in
            state.closed = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.continuation.resume(throwing: ConnectionPoolClosedError()) }
        for slot in slots {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                slot.queue.async {
                    slot.closeConnection()
                    continuation.resume()
                }
            }
        }
    }

    // MARK: - Checkout

    private func checkout() async throws -> Int {
        // Fast path: an idle slot.
        let immediate = state.withLockedValue { state -> CheckoutStep in
            if state.closed { return .fail(ConnectionPoolClosedError()) }
            if let index = state.idle.popLast() { return .resume(index) }
            return .wait
        }
        switch immediate {
        case .resume(let index): return index
        case .fail(let error): throw error
        case .wait: break
        }

        let id = state.withLockedValue { state -> UInt64 in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
                let action = state.withLockedValue { state -> CheckoutStep in
                    if state.closed { return .fail(ConnectionPoolClosedError()) }
                    if Task.isCancelled { return .fail(CancellationError()) }
                    if let index = state.idle.popLast() { return .resume(index) }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return .wait
                }
                switch action {
                case .resume(let index): continuation.resume(returning: index)
                case .fail(let error): continuation.resume(throwing: error)
                case .wait: break
                }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> Waiter? in
                guard let position = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: position)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    private func checkin(_ index: Int) {
        let waiter = state.withLockedValue { state -> Waiter? in
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.idle.append(index)
            return nil
        }
        waiter?.continuation.resume(returning: index)
    }

    // MARK: - Slot

    /// One borrower's call: lets the cancelling thread interrupt it, whether it has started yet or not.
    private final class Call: Sendable {
        private struct State {
            var interrupter: (any ConnectionInterrupter)?
            var cancelled = false
        }
        private let state = NIOLockedValueBox(State())

        /// On the slot's queue, before the body runs. `false` when the call was already cancelled.
        func begin(_ interrupter: (any ConnectionInterrupter)?) -> Bool {
            state.withLockedValue { state in
                state.interrupter = interrupter
                return !state.cancelled
            }
        }

        /// On the slot's queue, after the body returned.
        func end() {
            state.withLockedValue { $0.interrupter = nil }
        }

        /// From any thread; returns at once.
        ///
        /// A cancellation handler runs on the thread that cancels the task, usually one of Swift's
        /// cooperative threads, and an interrupt blocks (`PQcancel` opens a connection to the
        /// server and waits for its answer; with the server unreachable, for as long as the network
        /// lets it). So the interrupt itself runs on `interruptQueue`, a queue of its own. The
        /// `cancelled` flag is set here, synchronously, so a call that has not begun yet never
        /// starts. The interrupt runs under the lock, so `end()` (and the next borrower's call)
        /// waits for an interrupt in progress, and an interrupt that runs after `end()` finds no
        /// interrupter: a late cancel cannot hit the next call on this connection.
        func cancel() {
            let interrupting = state.withLockedValue { state -> Bool in
                state.cancelled = true
                return state.interrupter != nil
            }
            guard interrupting else { return }
            interruptQueue.async {
                self.state.withLockedValue { state in
                    state.interrupter?.interrupt()
                }
            }
        }
    }

    /// One connection and the serial queue that owns it.
    ///
    /// `@unchecked Sendable`: `connection` is read and written only by blocks running on `queue`
    /// (see the type's documentation).
    private final class Slot: @unchecked Sendable {
        let queue: DispatchQueue
        private var connection: Connection?
        /// Set by ``closeConnection()``. A borrower that checked the slot out just before the pool
        /// closed may submit its block after the close: it must fail, not open a connection that
        /// nothing would ever close.
        private var closed = false

        init(queue: DispatchQueue) { self.queue = queue }

        /// On `queue` only.
        func run<T>(_ call: Call, factory: Factory, _ body: (Connection) throws -> T) throws -> T {
            dispatchPrecondition(condition: .onQueue(queue))
            guard !closed else { throw ConnectionPoolClosedError() }
            if let existing = connection, !existing.isReusable() {
                existing.close()
                connection = nil
            }
            let current: Connection
            if let existing = connection {
                current = existing
            } else {
                current = try factory()
                connection = current
            }
            guard call.begin(current.interrupter) else { throw CancellationError() }
            defer { call.end() }
            return try body(current)
        }

        /// On `queue` only.
        func closeConnection() {
            dispatchPrecondition(condition: .onQueue(queue))
            closed = true
            connection?.close()
            connection = nil
        }
    }
}

/// Where interrupts run, off Swift's cooperative pool: concurrent, so one slow `PQcancel` does
/// not hold up the others.
private let interruptQueue = DispatchQueue(label: "leasehold.connection-pool.interrupts", attributes: .concurrent)

/// What a checkout does next, decided under the pool's lock and acted on outside it.
private enum CheckoutStep {
    case resume(Int)
    case fail(any Error)
    case wait
}
