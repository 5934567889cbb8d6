import CLibPQ
import Dispatch
import LeaseholdReactor
import Synchronization

/// One libpq connection in non-blocking mode, driven by a ``Reactor``: Leasehold's only kind of
/// PostgreSQL connection, pooled by ``PostgresClient`` (both are ``PostgresExecutor``s).
///
/// ## Why non-blocking
///
/// A blocking `PQexecParams` has to run off Swift's cooperative pool, so every statement on a
/// blocking connection costs two thread hand-offs (pool → the connection's queue → pool). Here
/// the statement is sent with `PQsendQueryParams`, and the task awaits the socket on the reactor
/// (``Reactor/writable(_:)`` until `PQflush` is done, ``Reactor/readable(_:)`` until `PQisBusy`
/// says a result is complete), so sending, waiting and reading the result all happen on the
/// reactor's one thread: no hand-off at all, and one reactor wake-up serves every connection
/// whose answer arrived.
///
/// ## TLS
///
/// With `sslmode` asking for TLS, OpenSSL decrypts one TLS record at a time, and a record can hold
/// more than libpq asks for in one read (up to 16 kB: PostgreSQL's own records stay within 8 kB,
/// which libpq always takes whole, but TLS terminators, poolers and other servers of the protocol
/// fill them). The rest stays inside OpenSSL, already read from the socket, so epoll does not
/// report the socket readable for it: waiting whenever `PQisBusy` says the result is incomplete
/// could wait for ever on bytes the client already has. So before each wait for input on a TLS
/// connection, the statement loop asks OpenSSL (`SSL_pending` on libpq's `SSL` object, the check
/// libpq's own blocking waits make) and reads on instead of waiting while bytes are there.
/// Sending needs nothing of the kind: while `PQflush` cannot send everything the loop waits for
/// readable *or* writable, and a server that has stopped reading while it writes to the client
/// keeps the socket readable. A plaintext connection costs nothing more: `usesTLS` is fixed when
/// the connection opens.
///
/// ## Thread and ownership rules
///
/// - Every method must be called on the connection's reactor (from a task that prefers it:
///   `withTaskExecutorPreference(reactor)`); each checks it with a precondition. That is what
///   makes the type safe to share (`Sendable`): its state is only ever touched on one thread.
/// - One statement at a time: a second statement while one is in flight (two tasks sharing the
///   connection) is a programming error and stops the process. ``PostgresClient`` lends a
///   connection to one task at a time.
/// - The connection owns its `PGconn` and frees it exactly once, in ``close()`` (or `deinit`),
///   after removing its socket from the reactor (``Reactor/forget(_:)``). Result memory is
///   copied into ``PostgresRows`` and freed before a statement returns.
///
/// ## Cancellation
///
/// If the awaiting task is cancelled while a statement runs, the connection asks the server to
/// cancel it (`PQcancel`, which blocks, so it runs on a dispatch queue of its own, never on the
/// reactor) and keeps reading until the statement has ended: the statement then fails with
/// SQLSTATE 57014 and the connection stays usable. A statement is not sent at all from a task
/// that is already cancelled (57014, source `.client`). The statement does not return until the
/// cancel request is done, so a late cancel can never hit the connection's next statement. Both
/// waits are bounded by ``cancelledStatementGrace``: a statement that has not ended by then (a
/// stopped backend, a server out of reach), or a cancel request still under way, fails the
/// statement with a connection error and costs the connection, which is not used again.
public final class PostgresConnection: @unchecked Sendable {
    // @unchecked Sendable: every stored property is read and written only on `reactor`'s thread
    // (each entry point preconditions `reactor.isCurrent`); `canceller` is thread-safe.

    public let configuration: PostgresConfiguration
    public let reactor: Reactor
    private var handle: OpaquePointer?
    /// The socket, fixed once the connection is open (libpq may switch sockets while connecting).
    let socket: Int32
    private let canceller: PostgresCanceller
    /// Set when a statement failed with SQLSTATE 25006: see ``isReusable()``.
    private var landedOnReadOnlyServer = false
    /// Set when the protocol state can no longer be trusted (the reactor shut down mid-statement,
    /// input could not be read, a COPY began): the connection refuses statements from then on.
    private var broken = false
    /// A statement is in flight.
    private var busy = false
    /// Whether the connection is encrypted: libpq's `PQsslInUse`, as `sslmode` asked or allowed,
    /// fixed once the connection is open.
    public let usesTLS: Bool
    /// The statements prepared on this session by ``query(_:preparedAs:)``: name → text.
    private var prepared: [String: String] = [:]
    /// Statements the server called stale whose session still has them (see
    /// ``query(_:preparedAs:)``): deallocated before they are prepared again.
    private var stalePrepared: Set<String> = []

    init(configuration: PostgresConfiguration, reactor: Reactor, handle: OpaquePointer, socket: Int32) {
        self.configuration = configuration
        self.reactor = reactor
        self.handle = handle
        self.socket = socket
        self.canceller = PostgresCanceller(PQgetCancel(handle))
        self.usesTLS = PQsslInUse(handle) == 1
    }

    deinit {
        if handle != nil {
            // Never closed. Off the reactor's thread the socket cannot be forgotten first; closing it
            // removes it from the epoll set all the same, and the reactor copes with its number
            // being reused (see Reactor's wait).
            if reactor.isCurrent && ownsSocket { reactor.forget(socket) }
            canceller.invalidate()
            PQfinish(handle)
        }
    }

    // MARK: State

    /// Closes the connection (removing its socket from the reactor first); safe to call twice.
    /// Reactor thread only, with no statement in flight.
    public func close() {
        precondition(reactor.isCurrent, "PostgresConnection.close() off its reactor's thread")
        precondition(!busy, "PostgresConnection.close() while a statement is in flight")
        canceller.invalidate()
        if let handle {
            if ownsSocket { reactor.forget(socket) }
            PQfinish(handle)
            self.handle = nil
        }
    }

    /// Whether libpq still has `socket` open. When it finds the connection lost it closes the
    /// socket itself, and the descriptor's number may then be reused at once by another
    /// connection's socket (one being opened during a failover, say) that may be waiting on the
    /// reactor: forgetting the number then would take that socket out of the reactor.
    private var ownsSocket: Bool {
        guard let handle else { return false }
        return PQsocket(handle) == socket
    }

    /// Whether the last statement left the connection usable.
    public var isOpen: Bool {
        precondition(reactor.isCurrent, "PostgresConnection.isOpen off its reactor's thread")
        guard let handle, !broken else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// Reads whatever the server sent while the connection sat idle (a server that restarted
    /// sends a FATAL and closes the socket), rolls back a transaction a caller left open, and
    /// answers whether the connection can be lent out again: not when it is broken, nor when a
    /// statement on it was refused because the server is read-only (SQLSTATE 25006: the server
    /// was demoted or the session reached a standby, so a new connection, which
    /// `target_session_attrs=read-write` sends to whichever node is primary now, is needed).
    public func isReusable() async -> Bool {
        precondition(reactor.isCurrent, "PostgresConnection.isReusable() off its reactor's thread")
        guard let handle, !broken, !busy, !landedOnReadOnlyServer, PQstatus(handle) == CONNECTION_OK else {
            return false
        }
        guard PQconsumeInput(handle) == 1, PQstatus(handle) == CONNECTION_OK else { return false }
        switch PQtransactionStatus(handle) {
        case PQTRANS_IDLE:
            return true
        case PQTRANS_INTRANS, PQTRANS_INERROR:
            return (try? await run("ROLLBACK", cancellable: false)) != nil
        default:
            return false
        }
    }

    /// The server this connection reached, `host:port` as libpq resolved it.
    public var server: String {
        precondition(reactor.isCurrent, "PostgresConnection.server off its reactor's thread")
        guard let handle else { return "" }
        let host = PQhost(handle).map { String(cString: $0) } ?? ""
        let port = PQport(handle).map { String(cString: $0) } ?? ""
        return "\(host):\(port)"
    }

    /// The parameters this connection was opened with, as libpq resolved them (`PQconninfo`):
    /// keyword → value, for every keyword that has one. The password is left out.
    public var effectiveParameters: [String: String] {
        precondition(reactor.isCurrent, "PostgresConnection.effectiveParameters off its reactor's thread")
        guard let handle, let options = PQconninfo(handle) else { return [:] }
        defer { PQconninfoFree(options) }
        var parameters: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            let name = String(cString: keyword)
            if name != "password", let value = option.pointee.val { parameters[name] = String(cString: value) }
            option += 1
        }
        return parameters
    }

    /// The backend process ID (`pg_backend_pid()`), for logs and tests.
    public var backendPID: Int32 {
        precondition(reactor.isCurrent, "PostgresConnection.backendPID off its reactor's thread")
        return handle.map { PQbackendPID($0) } ?? 0
    }

    // MARK: Statements

    /// Runs one statement with its binds as parameters (`PQsendQueryParams`, results in binary).
    @discardableResult
    public func query(_ query: PostgresQuery) async throws(PostgresError) -> PostgresRows {
        try await run(query.sql, cancellable: true) { handle in
            Libpq.withParameters(of: query) { count, types, values, lengths, formats in
                query.sql.withCString { sql in
                    PQsendQueryParams(handle, sql, count, types, values, lengths, formats, 1)
                }
            }
        }
    }

    /// Runs `query` as the prepared statement `name` of this session: the first call prepares it
    /// (`PQsendPrepare`, one extra round trip per connection), every call runs it with its binds
    /// (`PQsendQueryPrepared`), so the server parses and plans the text once per connection
    /// instead of on every call. For the hot path's fixed statements; every call with one name must
    /// pass the same text (a precondition), and the parameter types of the first.
    ///
    /// A new connection starts with nothing prepared, so a reconnect or a failover prepares anew.
    /// Behind a transaction-mode pooler the server session is not this connection's own: such a
    /// pooler must track protocol-level prepared statements (PgBouncer 1.21+,
    /// `max_prepared_statements`).
    ///
    /// When the server says the statement is stale (``PostgresError/isStalePreparedStatement``:
    /// 26000, it no longer exists, e.g. a pooler without prepared statements or a `DEALLOCATE`;
    /// 0A000 "cached plan must not change result type", e.g. a migration changed a function's
    /// result), the statement is forgotten and, outside a transaction, deallocated, prepared again
    /// and run once more. Inside a transaction (now aborted) the error is thrown: the statement is
    /// deallocated and prepared anew on its next call, so the caller's retry of the transaction
    /// (the error ``PostgresError/isRetryable``) succeeds.
    @discardableResult
    public func query(_ query: PostgresQuery, preparedAs name: String) async throws(PostgresError) -> PostgresRows {
        do {
            return try await runPrepared(query, as: name)
        } catch let error where error.isStalePreparedStatement && error.source == .server {
            prepared[name] = nil
            // 0A000: the session still has the statement, and preparing the name again would
            // fail (42P05) until it is deallocated. 26000: there is nothing to deallocate (and a
            // DEALLOCATE that fails would abort the transaction it runs in).
            if error.sqlState != SQLState.invalidSQLStatementName { stalePrepared.insert(name) }
            guard let handle, PQtransactionStatus(handle) == PQTRANS_IDLE else { throw error }
            return try await runPrepared(query, as: name)
        }
    }

    /// ``query(_:preparedAs:)`` without the retry: prepares `name` unless this session has it
    /// (deallocating a stale one first), then runs it.
    private func runPrepared(_ query: PostgresQuery, as name: String) async throws(PostgresError) -> PostgresRows {
        if let text = prepared[name] {
            precondition(text == query.sql, "prepared statement \(name) reused with another text")
        } else {
            if stalePrepared.contains(name) {
                do throws(PostgresError) {
                    let quoted = String(name.flatMap { $0 == "\"" ? ["\"", "\""] : [$0] })
                    try await run("DEALLOCATE \"\(quoted)\"", cancellable: true)
                } catch let error where error.sqlState == SQLState.invalidSQLStatementName {
                    // Already gone (26000: the server never had it, or lost it with its session).
                }
                stalePrepared.remove(name)
            }
            do throws(PostgresError) {
                try await run(query.sql, cancellable: true) { handle in
                    Libpq.withParameters(of: query) { count, types, _, _, _ in
                        name.withCString { name in
                            query.sql.withCString { sql in PQsendPrepare(handle, name, sql, count, types) }
                        }
                    }
                }
            } catch let error where error.sqlState == SQLState.duplicatePreparedStatement {
                // Prepared by an earlier call whose reply was never read (its task was cancelled).
            }
            prepared[name] = query.sql
        }
        return try await run(query.sql, cancellable: true) { handle in
            Libpq.withParameters(of: query) { count, _, values, lengths, formats in
                name.withCString { name in PQsendQueryPrepared(handle, name, count, values, lengths, formats, 1) }
            }
        }
    }

    /// Runs one statement and returns the rows affected.
    @discardableResult
    public func execute(_ query: PostgresQuery) async throws(PostgresError) -> Int {
        try await self.query(query).affectedRows
    }

    /// Runs SQL text with no parameters through the simple-query protocol (`PQsendQuery`), which
    /// allows several statements in one string. For fixed commands only. The rows are the last
    /// statement's, in text format: readable as `String`, refused by typed decoders.
    @discardableResult
    public func simpleQuery(_ sql: String) async throws(PostgresError) -> PostgresRows {
        try await run(sql, cancellable: true)
    }

    // MARK: Transactions

    /// Runs `body` inside `BEGIN … COMMIT`, with this transaction's `lock_timeout` and
    /// `statement_timeout` (one round trip for `BEGIN` and both settings); rolls back when `body`
    /// throws. Begin, body, rollback and commit failures are kept apart in ``PostgresTransactionError``, and a body that swallowed a server error gets a
    /// commit error 25P02, never a silent rollback.
    ///
    /// `ROLLBACK` and `COMMIT` are not cancelled with the task: once the body has ended, its
    /// outcome is settled on the server and the connection is left idle.
    public func withTransaction<T>(
        _ options: PostgresTransactionOptions = PostgresTransactionOptions(),
        _ body: (PostgresConnection) async throws -> T
    ) async throws(PostgresTransactionError) -> T {
        do throws(PostgresError) {
            try await simpleQuery(options.beginScript)
        } catch {
            // BEGIN may have succeeded before the SET failed: leave the connection clean.
            if let handle, PQtransactionStatus(handle) != PQTRANS_IDLE {
                _ = try? await run("ROLLBACK", cancellable: false)
            }
            throw PostgresTransactionError(beginError: error)
        }

        let value: T
        do {
            value = try await body(self)
        } catch {
            var failure = PostgresTransactionError(bodyError: error)
            do throws(PostgresError) {
                try await run("ROLLBACK", cancellable: false)
            } catch let rollbackError {
                failure.rollbackError = rollbackError
            }
            throw failure
        }

        if let handle, PQtransactionStatus(handle) == PQTRANS_INERROR {
            _ = try? await run("ROLLBACK", cancellable: false)
            throw PostgresTransactionError.abortedByCaughtError
        }
        do throws(PostgresError) {
            try PostgresTransactionError.checkCommitted(try await run("COMMIT", cancellable: false))
        } catch {
            throw PostgresTransactionError(commitError: error)
        }
        return value
    }

    // MARK: The statement loop

    /// Sends one statement (`send`, `PQsendQuery` by default), flushes it, and reads every result
    /// until `PQgetResult` says the statement is over, keeping the one `PQexec` would return: the
    /// last, or the first error.
    ///
    /// - Parameter cancellable: whether cancelling the task cancels the statement (and refuses to
    ///   send it from a task already cancelled). `ROLLBACK` and `COMMIT` are not.
    @discardableResult
    private func run(
        _ sql: String, cancellable: Bool, send: ((OpaquePointer) -> Int32)? = nil
    ) async throws(PostgresError) -> PostgresRows {
        precondition(reactor.isCurrent, "a PostgresConnection statement off its reactor's thread")
        precondition(!busy, "two statements at once on one PostgresConnection")
        guard let handle, !broken, PQstatus(handle) == CONNECTION_OK else { throw Libpq.closedError(sql) }
        if cancellable && Task.isCancelled {
            throw PostgresError(
                source: .client, sqlState: SQLState.queryCanceled,
                message: "the task was cancelled before the statement was sent", query: sql)
        }
        busy = true
        defer { busy = false }

        let sent = send.map { $0(handle) } ?? sql.withCString { PQsendQuery(handle, $0) }
        guard sent == 1 else { throw Libpq.failure(handle, sql: sql) }

        var waiter = StatementWaiter(reactor: reactor, socket: socket, cancellable: cancellable, canceller: canceller)
        var kept: OpaquePointer?
        defer { if let kept { PQclear(kept) } }
        do throws(PostgresError) {
            // Send everything. A failed flush (-1) lost the connection: the results say so.
            // While PQflush cannot send it all, wait for the socket to be readable or writable, as
            // libpq documents, and drain the input either way: a server blocked writing to us
            // (notices, notifications) reads no more of our statement until we read, so waiting
            // for writability alone could wait for ever.
            while PQflush(handle) == 1 {
                try await waiter.wait(.readableOrWritable)
                guard PQconsumeInput(handle) == 1 else { break }
            }
            // Read results until there are none. Over TLS, a read can leave decrypted bytes of
            // the reply inside OpenSSL, off the socket: they are taken without waiting (see TLS
            // above). A plaintext connection makes no such check.
            while true {
                while PQisBusy(handle) == 1 {
                    if !usesTLS || lh_pg_tls_pending(handle) == 0 {
                        try await waiter.wait(.readable)
                    }
                    if PQconsumeInput(handle) == 0 && PQstatus(handle) == CONNECTION_OK {
                        // Input failed with the connection nominally open: PQgetResult would block.
                        broken = true
                        throw Libpq.failure(handle, sql: sql)
                    }
                }
                guard let result = PQgetResult(handle) else { break }
                let status = PQresultStatus(result)
                if let previous = kept, PQresultStatus(previous) == PGRES_FATAL_ERROR, status == PGRES_FATAL_ERROR {
                    PQclear(result)  // PQexec keeps the first error
                } else {
                    if let previous = kept { PQclear(previous) }
                    kept = result
                }
                if status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH {
                    broken = true  // COPY is not supported here; the protocol state is unusable
                    break
                }
                if PQstatus(handle) == CONNECTION_BAD { break }
            }
        } catch {
            // A wait failed (the reactor shut down) or input could not be read: the statement's
            // end was never seen, so the protocol state cannot be trusted any more.
            broken = true
            _ = await waiter.finish()
            throw error
        }
        if await !waiter.finish() { broken = true }
        let result = kept
        kept = nil
        do {
            return try Libpq.consume(result, connection: handle, sql: sql)
        } catch {
            if error.sqlState == SQLState.readOnlySQLTransaction { landedOnReadOnlyServer = true }
            throw error
        }
    }

    /// The socket waits of one statement, and what the task's cancellation does to them.
    ///
    /// Once a task is cancelled, every ``Reactor`` wait it starts throws at once, so after the
    /// first `CancellationError` the rest of the statement's waits run in an unstructured task on
    /// the same reactor, which the cancellation does not reach: the statement is read to its end,
    /// but for no longer than ``cancelledStatementGrace`` after the cancel was asked for. A server
    /// that does not end the statement by then (a stopped or unreachable backend) costs the
    /// connection instead: the wait throws a connection error and the connection is marked broken.
    private struct StatementWaiter {
        let reactor: Reactor
        let socket: Int32
        let cancellable: Bool
        let canceller: PostgresCanceller
        private var sawCancellation = false
        /// When a cancelled statement's waits give up: set with the cancel request.
        private var cancelDeadline: ContinuousClock.Instant?
        /// The `PQcancel` in progress on ``cancelQueue``: set when it has returned.
        private var cancelRequest: CancelRequest?

        init(reactor: Reactor, socket: Int32, cancellable: Bool, canceller: PostgresCanceller) {
            self.reactor = reactor
            self.socket = socket
            self.cancellable = cancellable
            self.canceller = canceller
        }

        mutating func wait(_ readiness: Readiness) async throws(PostgresError) {
            while true {
                do {
                    if sawCancellation {
                        let (reactor, socket, deadline) = (reactor, socket, cancelDeadline)
                        let ready = try await Task(executorPreference: reactor) {
                            try await PostgresConnection.wait(
                                readiness, socket: socket, until: deadline, reactor: reactor, again: true)
                        }.value
                        guard ready else {
                            throw PostgresError(
                                source: .connection, sqlState: SQLState.connectionFailure,
                                message:
                                    "the statement did not end within \(PostgresConnection.cancelledStatementGrace) of its cancel request; the connection is dropped"
                            )
                        }
                    } else {
                        _ = try await PostgresConnection.wait(
                            readiness, socket: socket, until: nil, reactor: reactor, again: true)
                    }
                    return
                } catch is CancellationError {
                    sawCancellation = true
                    if cancellable && cancelRequest == nil { requestCancel() }
                } catch let error as PostgresError {
                    throw error
                } catch {
                    // The reactor shut down, or epoll refused the descriptor.
                    throw PostgresError(
                        source: .connection, sqlState: SQLState.connectionFailure,
                        message: "waiting for the server failed: \(error)")
                }
            }
        }

        /// Asks the server to cancel the statement, off the reactor: `PQcancel` opens a
        /// connection to the server and waits for its answer, with no time limit of its own
        /// (libpq's `PQcancel` ignores `connect_timeout`), so nothing on the reactor waits for it
        /// past ``cancelDeadline``.
        private mutating func requestCancel() {
            let (canceller, request) = (canceller, CancelRequest())
            cancelRequest = request
            cancelDeadline = .now + PostgresConnection.cancelledStatementGrace
            cancelQueue.async {
                canceller.interrupt()
                request.done.store(true, ordering: .releasing)
            }
        }

        /// Waits for a cancel request in progress, so it cannot reach the next statement, but no
        /// later than ``cancelDeadline``: `false` when it is still running then (the caller drops
        /// the connection, so a late cancel can only reach a session that is gone).
        func finish() async -> Bool {
            guard let cancelRequest, let deadline = cancelDeadline else { return true }
            if cancelRequest.done.load(ordering: .acquiring) { return true }
            let reactor = reactor
            return await Task(executorPreference: reactor) {
                while !cancelRequest.done.load(ordering: .acquiring) && ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(5))
                }
                return cancelRequest.done.load(ordering: .acquiring)
            }.value
        }
    }

    /// How long a statement whose task was cancelled has to end after the cancel request, before
    /// the connection is dropped instead.
    public static let cancelledStatementGrace: Duration = .seconds(1)
}

/// One `PQcancel` call on ``cancelQueue``.
private final class CancelRequest: Sendable {
    let done = Atomic<Bool>(false)
}

/// Where `PQcancel` runs for ``PostgresConnection``s, off every reactor: concurrent, so one
/// slow cancel does not hold up the others.
private let cancelQueue = DispatchQueue(label: "leasehold.postgres.async-cancel", attributes: .concurrent)
