import CLibPQ
import ConnectionPool
import Foundation
import LeaseholdCore
import NIOConcurrencyHelpers

/// One libpq connection (`PGconn`), with a blocking, synchronous API.
///
/// ## Ownership
///
/// This class is the single owner of its `PGconn`: it opens it in `init`, frees it exactly once
/// in ``close()`` (or `deinit` if never closed), and never hands the pointer out. It is not
/// `Sendable`: in Leasehold every instance belongs to one ``BlockingConnectionPool`` slot and is
/// only touched on that slot's dedicated queue, through ``PostgresClient/withConnection(_:)``, so
/// it is used by one thread at a time and never across an `await` (the closures that receive it
/// are synchronous). Result memory (`PGresult`) is copied into ``PostgresRows`` and freed before a
/// call returns; parameter buffers are pinned with `withUnsafe…` only for the duration of
/// `PQexecParams`.
///
/// The one thing other threads may do is cancel the running statement, through
/// ``interrupter`` (libpq documents `PQcancel` as safe to call from another thread).
public final class PostgresConnection: BlockingConnection {
    private var handle: OpaquePointer?
    private let canceller: PostgresCanceller
    /// Set when a statement failed with SQLSTATE 25006 (read_only_sql_transaction): the server
    /// turned read-only under this session (a primary demoted, `default_transaction_read_only`
    /// switched on) or the session reached a standby. ``isReusable()`` then answers `false`, so the
    /// pool opens a new connection, which `target_session_attrs=read-write` sends to whichever
    /// node is primary now. (A write in a transaction begun `READ ONLY` gets the same SQLSTATE;
    /// replacing that connection costs a reconnect and nothing else.)
    private var landedOnReadOnlyServer = false
    public let configuration: PostgresConfiguration

    /// Opens a connection (blocking, bounded by `connectTimeoutSeconds`).
    public init(configuration: PostgresConfiguration) throws(PostgresError) {
        self.configuration = configuration
        let (keywords, values) = configuration.connectParameters
        let connection = withCStringArray(keywords) { keywordPointers in
            withCStringArray(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let connection else {
            throw PostgresError(source: .connection, sqlState: SQLState.unableToConnect, message: "out of memory")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let error = Libpq.connectError(connection, configuration: configuration)
            PQfinish(connection)
            throw error
        }
        lh_pg_silence_notices(connection)
        self.handle = connection
        self.canceller = PostgresCanceller(PQgetCancel(connection))
    }

    deinit {
        close()
    }

    // MARK: BlockingConnection

    /// Closes the connection; safe to call twice.
    public func close() {
        canceller.invalidate()
        if let handle {
            PQfinish(handle)
            self.handle = nil
        }
    }

    /// Reads whatever the server sent while the connection sat idle (a server that restarted sends
    /// a FATAL and closes the socket), rolls back a transaction a caller left open, and answers
    /// whether the connection can be lent out again: not when it is broken, nor when a statement
    /// on it was refused because the server is read-only (SQLSTATE 25006, see
    /// ``landedOnReadOnlyServer``).
    public func isReusable() -> Bool {
        guard let handle, PQstatus(handle) == CONNECTION_OK, !landedOnReadOnlyServer else { return false }
        // libpq's socket is non-blocking, so this never waits.
        guard PQconsumeInput(handle) == 1, PQstatus(handle) == CONNECTION_OK else { return false }
        switch PQtransactionStatus(handle) {
        case PQTRANS_IDLE:
            return true
        case PQTRANS_INTRANS, PQTRANS_INERROR:
            return (try? simpleQuery("ROLLBACK")) != nil
        default:
            return false
        }
    }

    public var interrupter: (any ConnectionInterrupter)? { canceller }

    /// Whether the last call left the connection usable.
    public var isOpen: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// The parameters this connection was opened with, as libpq resolved them (`PQconninfo`):
    /// keyword → value, for every keyword that has one. The password is left out.
    public var effectiveParameters: [String: String] {
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

    /// The server this connection reached, `host:port` as libpq resolved it: with several hosts
    /// in the connection string, the one that was chosen.
    public var server: String {
        guard let handle else { return "" }
        let host = PQhost(handle).map { String(cString: $0) } ?? ""
        let port = PQport(handle).map { String(cString: $0) } ?? ""
        return "\(host):\(port)"
    }

    /// The backend process ID (`pg_backend_pid()`), for logs and tests.
    public var backendPID: Int32 {
        guard let handle else { return 0 }
        return PQbackendPID(handle)
    }

    // MARK: Statements

    /// Runs one statement with its binds as parameters (`PQexecParams`, results in binary).
    @discardableResult
    public func query(_ query: PostgresQuery) throws(PostgresError) -> PostgresRows {
        let handle = try requireHandle(query.sql)
        let result = Libpq.withParameters(of: query) { count, types, values, lengths, formats in
            query.sql.withCString { sql in PQexecParams(handle, sql, count, types, values, lengths, formats, 1) }
        }
        return try consume(result, sql: query.sql)
    }

    /// Runs one statement and returns the rows affected (`UPDATE … ` → how many rows changed).
    @discardableResult
    public func execute(_ query: PostgresQuery) throws(PostgresError) -> Int {
        try self.query(query).affectedRows
    }

    /// Runs SQL text with no parameters through the simple-query protocol (`PQexec`), which allows
    /// several statements in one string. For migrations and fixed commands only. The rows are the
    /// last statement's, in text format: readable as `String`, refused by typed decoders.
    @discardableResult
    public func simpleQuery(_ sql: String) throws(PostgresError) -> PostgresRows {
        let handle = try requireHandle(sql)
        let result = sql.withCString { PQexec(handle, $0) }
        return try consume(result, sql: sql)
    }

    // MARK: Transactions

    /// Runs `body` inside `BEGIN … COMMIT`, with this transaction's `lock_timeout` and
    /// `statement_timeout`; rolls back when `body` throws.
    ///
    /// Errors come back as ``PostgresTransactionError`` with begin, body, rollback and commit
    /// failures kept apart. A body that swallowed a server error leaves the transaction aborted;
    /// that is reported as a commit error, never as a silent rollback.
    public func withTransaction<T>(
        _ options: PostgresTransactionOptions = PostgresTransactionOptions(),
        _ body: (PostgresConnection) throws -> T
    ) throws(PostgresTransactionError) -> T {
        do throws(PostgresError) {
            // One round trip for BEGIN and both timeouts.
            try simpleQuery(options.beginScript)
        } catch {
            // BEGIN may have succeeded before the SET failed: leave the connection clean.
            if let handle, PQtransactionStatus(handle) != PQTRANS_IDLE { _ = try? simpleQuery("ROLLBACK") }
            throw PostgresTransactionError(beginError: error)
        }

        let value: T
        do {
            value = try body(self)
        } catch {
            var failure = PostgresTransactionError(bodyError: error)
            do {
                try simpleQuery("ROLLBACK")
            } catch let rollbackError {
                failure.rollbackError = rollbackError
            }
            throw failure
        }

        if let handle, PQtransactionStatus(handle) == PQTRANS_INERROR {
            _ = try? simpleQuery("ROLLBACK")
            throw PostgresTransactionError.abortedByCaughtError
        }
        do throws(PostgresError) {
            try PostgresTransactionError.checkCommitted(try simpleQuery("COMMIT"))
        } catch {
            throw PostgresTransactionError(commitError: error)
        }
        return value
    }

    // MARK: Private

    private func requireHandle(_ sql: String) throws(PostgresError) -> OpaquePointer {
        guard let handle, PQstatus(handle) == CONNECTION_OK else { throw Libpq.closedError(sql) }
        return handle
    }

    /// Turns a `PGresult` into rows or an error (then frees it), noting a read-only server.
    private func consume(_ result: OpaquePointer?, sql: String) throws(PostgresError) -> PostgresRows {
        do {
            return try Libpq.consume(result, connection: handle, sql: sql)
        } catch {
            if error.sqlState == SQLState.readOnlySQLTransaction { landedOnReadOnlyServer = true }
            throw error
        }
    }
}

/// Options for one transaction.
public struct PostgresTransactionOptions: Sendable {
    public enum Isolation: Sendable {
        case readCommitted, repeatableRead, serializable
        var sql: String {
            switch self {
            case .readCommitted: "READ COMMITTED"
            case .repeatableRead: "REPEATABLE READ"
            case .serializable: "SERIALIZABLE"
            }
        }
    }

    public var isolation: Isolation
    public var readOnly: Bool
    /// How long one statement may wait for a row lock (`lock_timeout`); `nil` waits forever.
    /// Exceeding it fails with SQLSTATE 55P03, which is retryable.
    public var lockTimeout: Duration?
    /// How long one statement may run (`statement_timeout`); `nil` has no limit.
    public var statementTimeout: Duration?

    public init(
        isolation: Isolation = .readCommitted, readOnly: Bool = false, lockTimeout: Duration? = .seconds(5),
        statementTimeout: Duration? = .seconds(30)
    ) {
        self.isolation = isolation
        self.readOnly = readOnly
        self.lockTimeout = lockTimeout
        self.statementTimeout = statementTimeout
    }

    var lockTimeoutSetting: String { Self.milliseconds(lockTimeout) }
    var statementTimeoutSetting: String { Self.milliseconds(statementTimeout) }

    private static func milliseconds(_ duration: Duration?) -> String {
        guard let duration else { return "0" }
        return String(max(1, duration.milliseconds))
    }
}

/// Cancels the statement running on a connection, from any thread (`PQcancel`).
///
/// Owns the `PGcancel` object: created with the connection, freed once, by ``invalidate()`` or,
/// when a `PQcancel` is still running then, by that call when it returns. `PQcancel` runs outside
/// the lock (it can take as long as the network does: libpq gives it no timeout), so
/// ``invalidate()`` never waits for it, and a second ``interrupt()`` while one runs does nothing.
final class PostgresCanceller: ConnectionInterrupter {
    private struct Handle: @unchecked Sendable {
        // Only read or freed under `state`'s lock, or by the one interrupt in progress.
        var pointer: OpaquePointer?
        var interrupting = false
        var invalidated = false
    }
    private let state: NIOLockedValueBox<Handle>

    init(_ pointer: OpaquePointer?) {
        state = NIOLockedValueBox(Handle(pointer: pointer))
    }

    deinit {
        invalidate()
    }

    func interrupt() {
        let taken = state.withLockedValue { handle -> Handle? in
            guard handle.pointer != nil, !handle.interrupting, !handle.invalidated else { return nil }
            handle.interrupting = true
            return handle
        }
        guard let pointer = taken?.pointer else { return }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(pointer, &buffer, Int32(buffer.count))
        let free = state.withLockedValue { handle -> Bool in
            handle.interrupting = false
            guard handle.invalidated, handle.pointer != nil else { return false }
            handle.pointer = nil
            return true
        }
        if free { PQfreeCancel(pointer) }
    }

    func invalidate() {
        let pointer = state.withLockedValue { handle -> OpaquePointer? in
            handle.invalidated = true
            guard !handle.interrupting, let pointer = handle.pointer else { return nil }
            handle.pointer = nil
            return pointer
        }
        if let pointer { PQfreeCancel(pointer) }
    }
}

/// Calls `body` with a NULL-terminated `const char *[]` that lives only for the call.
func withCStringArray<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let duplicated = strings.map { strdup($0) }
    defer { duplicated.forEach { free($0) } }
    return body(duplicated.map { UnsafePointer($0) } + [nil])
}
