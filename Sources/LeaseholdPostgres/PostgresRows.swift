/// The rows of a result, copied out of libpq's memory before the `PGresult` was freed.
public struct PostgresRows: Sendable, Sequence {
    public var columns: [String]
    public var rows: [PostgresRow]
    /// Rows affected, for INSERT/UPDATE/DELETE (libpq's `PQcmdTuples`), else 0.
    public var affectedRows: Int
    /// The command tag, e.g. `INSERT 0 1` or `COMMIT`.
    public var commandTag: String

    public func makeIterator() -> IndexingIterator<[PostgresRow]> { rows.makeIterator() }
    public var count: Int { rows.count }
    public var first: PostgresRow? { rows.first }
    public var isEmpty: Bool { rows.isEmpty }

    /// The only row, or an error when there is none or more than one.
    public func single() throws(PostgresError) -> PostgresRow {
        guard rows.count == 1 else {
            throw PostgresError(
                source: .client, sqlState: SQLState.clientDecodingFailure,
                message: "expected exactly one row, got \(rows.count)")
        }
        return rows[0]
    }
}

/// One row: cells by position, decodable into typed Swift values.
public struct PostgresRow: Sendable {
    public var cells: [PostgresCell]

    /// The value at `index`, decoded as `T` (`Optional` for nullable columns).
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at index: Int) throws(PostgresError) -> T {
        guard cells.indices.contains(index) else {
            throw PostgresError(
                source: .client, sqlState: SQLState.clientDecodingFailure,
                message: "column \(index) out of range (row has \(cells.count))")
        }
        return try T(postgresCell: cells[index])
    }

    /// The value of the column called `name`, decoded as `T`.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, column name: String) throws(PostgresError) -> T {
        guard let index = cells.firstIndex(where: { $0.columnName == name }) else {
            throw PostgresError(
                source: .client, sqlState: SQLState.clientDecodingFailure, message: "no column named \"\(name)\"")
        }
        return try T(postgresCell: cells[index])
    }

    /// Every column in order, e.g. `let (id, name) = try row.decode(Int64.self, String.self)`.
    public func decode<each T: PostgresDecodable>(_ types: repeat (each T).Type) throws(PostgresError) -> (
        repeat each T
    ) {
        var index = 0
        func next<U: PostgresDecodable>(_: U.Type) throws(PostgresError) -> U {
            defer { index += 1 }
            return try decode(U.self, at: index)
        }
        return (repeat try next((each T).self))
    }
}
