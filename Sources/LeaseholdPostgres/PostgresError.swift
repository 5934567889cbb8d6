/// An error reported by PostgreSQL or by libpq, with the SQLSTATE an operator needs.
///
/// `description` is safe for logs: the SQLSTATE and the server's primary message with any quoted
/// input cut off (see ``redactedMessage``). `debugDescription` has everything: the whole message,
/// the detail (which can quote values, e.g. `Key (time_slot_id)=(134) already exists.`), the
/// hint, and the statement. Keep `debugDescription` out of logs that leave the machine.
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// Where the error came from.
    public enum Source: Sendable, Equatable {
        /// The server rejected a statement (it carries a real SQLSTATE).
        case server
        /// The connection could not be opened or was lost (SQLSTATE class 08, set by the client
        /// when libpq gives none).
        case connection
        /// The client refused before sending anything, or could not decode a value.
        case client
    }

    public var source: Source
    /// The five-character SQLSTATE, e.g. `23505`.
    public var sqlState: String
    /// `ERROR`, `FATAL`, `PANIC` (untranslated), when the server sent one.
    public var severity: String?
    /// The primary message.
    public var message: String
    public var detail: String?
    public var hint: String?
    /// The violated constraint, for integrity errors.
    public var constraint: String?
    public var table: String?
    /// The SQL text (with `$n` placeholders, never values); only in `debugDescription`.
    public var query: String?

    public init(
        source: Source, sqlState: String, message: String, severity: String? = nil, detail: String? = nil,
        hint: String? = nil, constraint: String? = nil, table: String? = nil, query: String? = nil
    ) {
        self.source = source
        self.sqlState = sqlState
        self.message = message
        self.severity = severity
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
        self.table = table
        self.query = query
    }

    /// Whether retrying the whole transaction may succeed: serialization failure (40001),
    /// deadlock (40P01), lock not available (55P03, e.g. `lock_timeout`), any connection
    /// exception (class 08), and a stale prepared statement (``isStalePreparedStatement``: the
    /// connection forgot it, so the retry prepares it anew).
    public var isRetryable: Bool {
        switch sqlState {
        case SQLState.serializationFailure, SQLState.deadlockDetected, SQLState.lockNotAvailable: return true
        default: return sqlState.hasPrefix("08") || source == .connection || isStalePreparedStatement
        }
    }

    /// Whether the server refused a prepared statement that the session's cache holds: it does not
    /// exist (26000, e.g. behind a pooler without prepared statements, or after a `DEALLOCATE`), or
    /// its result's shape changed since it was prepared (0A000 "cached plan must not change result
    /// type", e.g. a migration replaced a function with another result type).
    /// ``PostgresConnection/query(_:preparedAs:)`` forgets the statement on these.
    public var isStalePreparedStatement: Bool {
        sqlState == SQLState.invalidSQLStatementName
            || (sqlState == SQLState.featureNotSupported
                && message.hasPrefix("cached plan must not change result type"))
    }

    /// The primary message without the input it may quote.
    ///
    /// Most primary messages name only objects (`duplicate key value violates unique constraint
    /// "x"`: the values are in the detail). Data exceptions (SQLSTATE class 22) are the exception:
    /// `invalid input syntax for type integer: "4111 1111 1111 1111"`, `invalid byte sequence for
    /// encoding "UTF8": 0x00` quote what was sent, after the message's first `": "`. For those
    /// the message is cut there and `(value withheld)` put in its place.
    public var redactedMessage: String {
        guard sqlState.hasPrefix("22"), let colon = message.range(of: ": ") else { return message }
        return message[..<colon.lowerBound] + " (value withheld)"
    }

    public var description: String {
        "PostgreSQL error \(sqlState): \(redactedMessage)"
    }

    public var debugDescription: String {
        var parts = ["PostgreSQL error \(sqlState) (\(source))"]
        if let severity { parts.append("severity: \(severity)") }
        parts.append("message: \(message)")
        if let detail { parts.append("detail: \(detail)") }
        if let hint { parts.append("hint: \(hint)") }
        if let constraint { parts.append("constraint: \(constraint)") }
        if let table { parts.append("table: \(table)") }
        if let query { parts.append("query: \(query)") }
        return parts.joined(separator: "; ")
    }
}

/// The SQLSTATEs Leasehold reacts to. See PostgreSQL's "Appendix A. Error Codes".
public enum SQLState {
    public static let uniqueViolation = "23505"
    public static let foreignKeyViolation = "23503"
    public static let checkViolation = "23514"
    public static let serializationFailure = "40001"
    public static let deadlockDetected = "40P01"
    public static let lockNotAvailable = "55P03"
    public static let queryCanceled = "57014"
    /// A prepared statement of that name already exists in the session.
    public static let duplicatePreparedStatement = "42P05"
    /// No prepared statement (or cursor) of that name in the session.
    public static let invalidSQLStatementName = "26000"
    public static let adminShutdown = "57P01"
    /// A write on a read-only server or session: a hot standby, or a primary that was demoted
    /// or had `default_transaction_read_only` switched on.
    public static let readOnlySQLTransaction = "25006"
    public static let featureNotSupported = "0A000"
    public static let characterNotInRepertoire = "22021"
    public static let connectionFailure = "08006"
    public static let unableToConnect = "08001"
    /// Client-side: a value could not be decoded into the requested Swift type.
    public static let clientDecodingFailure = "LHDEC"
    /// Client-side: the statement was refused before it was sent.
    public static let clientRefused = "LHREF"
}

/// What went wrong in ``PostgresConnection/withTransaction(_:_:)``, with each phase kept apart
/// (the shape of postgres-nio's `PostgresTransactionError`).
///
/// A ``commitError`` whose source is `.connection` means the outcome is **unknown**: the commit may
/// or may not have happened. Leasehold's inbox row makes a retry safe either way.
public struct PostgresTransactionError: Error, Sendable, CustomStringConvertible {
    /// `BEGIN` (or setting the timeouts) failed; the body never ran.
    public var beginError: PostgresError?
    /// The body threw; the transaction was rolled back (unless ``rollbackError`` says otherwise).
    public var bodyError: (any Error)?
    /// `ROLLBACK` after a failed body failed too (the connection is then discarded).
    public var rollbackError: PostgresError?
    /// `COMMIT` failed or did not commit.
    public var commitError: PostgresError?

    public init(
        beginError: PostgresError? = nil, bodyError: (any Error)? = nil, rollbackError: PostgresError? = nil,
        commitError: PostgresError? = nil
    ) {
        self.beginError = beginError
        self.bodyError = bodyError
        self.rollbackError = rollbackError
        self.commitError = commitError
    }

    /// The PostgreSQL error that decided the outcome, if any.
    public var postgresError: PostgresError? {
        beginError ?? (bodyError as? PostgresError) ?? commitError ?? rollbackError
    }

    /// Whether running the whole transaction again may succeed.
    public var isRetryable: Bool { postgresError?.isRetryable ?? false }

    public var description: String {
        if let beginError { return "transaction could not begin: \(beginError)" }
        if let bodyError {
            let rollback = rollbackError.map { "; rollback also failed: \($0)" } ?? ""
            return "transaction rolled back: \(bodyError)\(rollback)"
        }
        if let commitError { return "transaction commit failed: \(commitError)" }
        return "transaction failed"
    }
}
