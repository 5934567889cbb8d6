import CLibPQ
import Foundation
import NIOConcurrencyHelpers

/// The libpq calls of ``PostgresConnection``: how binds become `PQsendQueryParams`
/// arguments, and how a `PGresult` becomes ``PostgresRows`` or a ``PostgresError`` (with its
/// SQLSTATE and ``PostgresError/Source``).
enum Libpq {
    /// Calls `body` with the parameter arrays of `query` (count, type OIDs, values, lengths,
    /// formats), valid only for the call; results are requested in binary.
    static func withParameters<R>(
        of query: PostgresQuery,
        _ body:
            (
                _ count: Int32, _ types: [Oid], _ values: [UnsafePointer<CChar>?], _ lengths: [Int32],
                _ formats: [Int32]
            ) -> R
    ) -> R {
        let types = query.binds.map { Oid($0.type.rawValue) }
        let formats = query.binds.map { $0.format.rawValue }
        let lengths = query.binds.map { Int32($0.bytes?.count ?? 0) }
        // One contiguous buffer for all parameter bytes, so every pointer stays valid for the call.
        // Each value is followed by a NUL: libpq ignores `paramLengths` for text-format parameters
        // (NUMERIC) and reads them as C strings, so without it a text value would run on into the
        // next parameter's bytes. Binary values are read by length, so the NUL does not reach them.
        var offsets: [Int] = []
        var storage: [UInt8] = []
        for bind in query.binds {
            offsets.append(storage.count)
            storage.append(contentsOf: bind.bytes ?? [])
            storage.append(0)
        }
        storage.append(0)  // never empty, so baseAddress is never nil

        return storage.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            let values: [UnsafePointer<CChar>?] = query.binds.indices.map { index in
                query.binds[index].bytes == nil ? nil : base + offsets[index]
            }
            return body(Int32(query.binds.count), types, values, lengths, formats)
        }
    }

    /// Turns a `PGresult` into rows or an error, then frees it. A NULL result is libpq's way of
    /// saying the connection failed (its message is in `PQerrorMessage`).
    static func consume(_ result: OpaquePointer?, connection: OpaquePointer?, sql: String) throws(PostgresError)
        -> PostgresRows
    {
        guard let result else { throw failure(connection, sql: sql) }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return copyRows(result)
        default:
            throw error(from: result, connection: connection, sql: sql)
        }
    }

    /// The error a failed `PGresult` carries. `source` is `.connection` when the connection is no
    /// longer usable (`PQstatus` is not OK), whatever the SQLSTATE (e.g. 57P01 from
    /// `pg_terminate_backend`), so callers retry on a new connection.
    static func error(from result: OpaquePointer, connection: OpaquePointer?, sql: String) -> PostgresError {
        func field(_ code: Int32) -> String? {
            guard let value = PQresultErrorField(result, code) else { return nil }
            return String(cString: value)
        }
        let message = field(lh_pg_diag_message_primary()) ?? trimmed(PQresultErrorMessage(result))
        if let sqlState = field(lh_pg_diag_sqlstate()) {
            let lost = connection.map { PQstatus($0) != CONNECTION_OK } ?? true
            return PostgresError(
                source: lost ? .connection : .server, sqlState: sqlState, message: message,
                severity: field(lh_pg_diag_severity()), detail: field(lh_pg_diag_message_detail()),
                hint: field(lh_pg_diag_message_hint()), constraint: field(lh_pg_diag_constraint_name()),
                table: field(lh_pg_diag_table_name()), query: sql)
        }
        // libpq's own errors carry no SQLSTATE; a lost connection is the usual one.
        return PostgresError(
            source: .connection, sqlState: SQLState.connectionFailure,
            message: message.isEmpty ? "connection lost" : message, query: sql)
    }

    /// The error libpq reports for the connection itself (`PQerrorMessage`): a send, flush or read
    /// that failed, or no result at all.
    static func failure(_ connection: OpaquePointer?, sql: String) -> PostgresError {
        PostgresError(
            source: .connection, sqlState: SQLState.connectionFailure,
            message: connection.map { trimmed(PQerrorMessage($0)) } ?? "no connection", query: sql)
    }

    /// The error for a statement on a connection that is closed or broken.
    static func closedError(_ sql: String) -> PostgresError {
        PostgresError(
            source: .connection, sqlState: SQLState.connectionFailure, message: "connection is closed", query: sql)
    }

    /// The error for a connection that could not be opened. With several hosts libpq reports each
    /// one's failure on a line of its own; they are joined with `; `.
    static func connectError(_ connection: OpaquePointer, configuration: PostgresConfiguration) -> PostgresError {
        let message = trimmed(PQerrorMessage(connection)).split(separator: "\n")
            .map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "; ")
        return PostgresError(
            source: .connection, sqlState: SQLState.unableToConnect,
            message: "cannot connect to \(configuration.redactedConnectionString): \(message)")
    }

    /// Copies every cell out of libpq's memory.
    static func copyRows(_ result: OpaquePointer) -> PostgresRows {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        let names = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        let types = (0..<columnCount).map { PostgresType(rawValue: UInt32(PQftype(result, Int32($0)))) }
        let formats = (0..<columnCount).map { PQfformat(result, Int32($0)) == 1 ? PostgresBind.Format.binary : .text }
        var rows: [PostgresRow] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<Int32(rowCount) {
            var cells: [PostgresCell] = []
            cells.reserveCapacity(columnCount)
            for column in 0..<Int32(columnCount) {
                var bytes: [UInt8]?
                if PQgetisnull(result, row, column) == 0 {
                    let length = Int(PQgetlength(result, row, column))
                    if let value = PQgetvalue(result, row, column) {
                        bytes = value.withMemoryRebound(to: UInt8.self, capacity: length) {
                            Array(UnsafeBufferPointer(start: $0, count: length))
                        }
                    } else {
                        bytes = []
                    }
                }
                cells.append(
                    PostgresCell(
                        type: types[Int(column)], columnName: names[Int(column)], bytes: bytes,
                        format: formats[Int(column)]))
            }
            rows.append(PostgresRow(cells: cells))
        }
        let tag = PQcmdStatus(result).map { String(cString: $0) } ?? ""
        let affected = PQcmdTuples(result).flatMap { Int(String(cString: $0)) } ?? 0
        return PostgresRows(columns: names, rows: rows, affectedRows: affected, commandTag: tag)
    }

    static func trimmed(_ message: UnsafePointer<CChar>?) -> String {
        guard let message else { return "" }
        return String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

extension PostgresTransactionOptions {
    /// `BEGIN` and both timeouts, for one round trip through the simple-query protocol. The only
    /// text spliced in is the isolation level (from an enum) and two integers formatted here: no
    /// caller value reaches this SQL.
    var beginScript: String {
        """
        BEGIN ISOLATION LEVEL \(isolation.sql)\(readOnly ? " READ ONLY" : "");
        SET LOCAL lock_timeout = \(lockTimeoutSetting);
        SET LOCAL statement_timeout = \(statementTimeoutSetting)
        """
    }
}

extension PostgresTransactionError {
    /// The body returned, but a statement in it had failed and the body caught the error: the
    /// server aborted the transaction, so it was rolled back instead of committed.
    static var abortedByCaughtError: PostgresTransactionError {
        PostgresTransactionError(
            commitError: PostgresError(
                source: .client, sqlState: "25P02",
                message: "transaction was aborted by an earlier error that the body caught; rolled back"))
    }

    /// Checks `COMMIT`'s answer: a transaction the server had aborted answers `ROLLBACK`.
    static func checkCommitted(_ commit: PostgresRows) throws(PostgresError) {
        guard commit.commandTag == "COMMIT" else {
            throw PostgresError(
                source: .server, sqlState: "25P02", message: "COMMIT answered \(commit.commandTag); rolled back")
        }
    }
}

extension PostgresConfiguration {
    /// Whether a server named by this configuration accepts connections now (libpq's
    /// `PQpingParams`: no login, no statement). Blocks for up to ``connectTimeoutSeconds`` per host:
    /// for a test's or a tool's start-up check, never on a reactor.
    public func serverAcceptsConnections() -> Bool {
        let (keywords, values) = connectParameters
        let status = withCStringArray(keywords) { keywordPointers in
            withCStringArray(values) { valuePointers in PQpingParams(keywordPointers, valuePointers, 1) }
        }
        return status == PQPING_OK
    }
}

/// Cancels the statement running on a connection, from any thread (`PQcancel`).
///
/// Owns the `PGcancel` object: created with the connection, freed once, by ``invalidate()`` or,
/// when a `PQcancel` is still running then, by that call when it returns. `PQcancel` runs outside
/// the lock (it can take as long as the network does: libpq gives it no timeout), so
/// ``invalidate()`` never waits for it, and a second ``interrupt()`` while one runs does nothing.
final class PostgresCanceller: Sendable {
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
