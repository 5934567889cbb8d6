/// A SQL statement whose interpolated values become `$n` bind parameters.
///
/// ```swift
/// let query: PostgresQuery = "SELECT id FROM time_slots WHERE id = \(slotID) FOR UPDATE"
/// // sql: "SELECT id FROM time_slots WHERE id = $1 FOR UPDATE", binds: [slotID]
/// ```
///
/// Values are never spliced into the SQL text, so injection is impossible by construction.
/// The only way to add raw text is `\(unescaped: …)`, meant for compile-time constants such as
/// an isolation level or a table name chosen from an enum, never for input.
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation {
    public var sql: String
    public var binds: [PostgresBind]

    public init(unsafeSQL sql: String, binds: [PostgresBind] = []) {
        self.sql = sql
        self.binds = binds
    }

    public init(stringLiteral value: String) {
        self.sql = value
        self.binds = []
    }

    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.binds = stringInterpolation.binds
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var binds: [PostgresBind] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            binds.reserveCapacity(interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) {
            sql += literal
        }

        /// A value: sent as the next `$n` parameter.
        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            binds.append(value.postgresBind)
            sql += "$\(binds.count)"
        }

        /// An optional value: `NULL` when nil.
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
            binds.append(value.map(\.postgresBind) ?? .null(type: Value.postgresType))
            sql += "$\(binds.count)"
        }

        /// Raw SQL text. Only for constants written in code, never for values.
        public mutating func appendInterpolation(unescaped text: String) {
            sql += text
        }
    }
}
