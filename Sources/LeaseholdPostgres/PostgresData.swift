import Foundation

/// A PostgreSQL type OID (see `pg_type`).
public struct PostgresType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let unspecified = PostgresType(rawValue: 0)
    public static let bool = PostgresType(rawValue: 16)
    public static let bytea = PostgresType(rawValue: 17)
    public static let char = PostgresType(rawValue: 18)
    public static let name = PostgresType(rawValue: 19)
    public static let int8 = PostgresType(rawValue: 20)
    public static let int2 = PostgresType(rawValue: 21)
    public static let int4 = PostgresType(rawValue: 23)
    public static let text = PostgresType(rawValue: 25)
    public static let oid = PostgresType(rawValue: 26)
    public static let json = PostgresType(rawValue: 114)
    public static let float4 = PostgresType(rawValue: 700)
    public static let float8 = PostgresType(rawValue: 701)
    public static let unknown = PostgresType(rawValue: 705)
    public static let bpchar = PostgresType(rawValue: 1042)
    public static let varchar = PostgresType(rawValue: 1043)
    public static let date = PostgresType(rawValue: 1082)
    public static let timestamp = PostgresType(rawValue: 1114)
    public static let timestamptz = PostgresType(rawValue: 1184)
    public static let numeric = PostgresType(rawValue: 1700)
    public static let uuid = PostgresType(rawValue: 2950)
    public static let jsonb = PostgresType(rawValue: 3802)
    public static let int8Array = PostgresType(rawValue: 1016)
    public static let textArray = PostgresType(rawValue: 1009)

    public var description: String {
        switch self {
        case .bool: "bool"
        case .bytea: "bytea"
        case .int8: "int8"
        case .int2: "int2"
        case .int4: "int4"
        case .text: "text"
        case .varchar: "varchar"
        case .numeric: "numeric"
        case .timestamptz: "timestamptz"
        case .timestamp: "timestamp"
        case .jsonb: "jsonb"
        case .json: "json"
        case .uuid: "uuid"
        case .float8: "float8"
        default: "oid \(rawValue)"
        }
    }
}

/// One bind parameter, already encoded: its type, wire format and bytes (`nil` is SQL `NULL`).
///
/// Binary format is used wherever it is exact and simple; NUMERIC travels as text because its
/// text form is exact and its binary form is not simpler.
public struct PostgresBind: Sendable, Equatable {
    public enum Format: Int32, Sendable { case text = 0, binary = 1 }
    public var type: PostgresType
    public var format: Format
    public var bytes: [UInt8]?

    public init(type: PostgresType, format: Format, bytes: [UInt8]?) {
        self.type = type
        self.format = format
        self.bytes = bytes
    }

    public static func null(type: PostgresType) -> PostgresBind {
        PostgresBind(type: type, format: .binary, bytes: nil)
    }
}

/// One value of a result row, copied out of libpq's memory.
public struct PostgresCell: Sendable, Equatable {
    public var type: PostgresType
    public var columnName: String
    /// `nil` is SQL `NULL`.
    public var bytes: [UInt8]?
    /// How `bytes` are encoded: binary for ``PostgresConnection/query(_:)``; text for
    /// ``PostgresConnection/simpleQuery(_:)``, whose protocol always answers in text. Typed decoders
    /// read binary only (a text `1234` must never be misread as a 4-byte integer); `String` reads both.
    public var format: PostgresBind.Format = .binary
}

/// A Swift value that can be sent as a bind parameter.
public protocol PostgresEncodable: Sendable {
    static var postgresType: PostgresType { get }
    var postgresBind: PostgresBind { get }
}

/// A Swift value that can be read from a result cell.
public protocol PostgresDecodable {
    init(postgresCell cell: PostgresCell) throws(PostgresError)
}

extension PostgresError {
    static func decoding(_ cell: PostgresCell, as type: Any.Type, _ reason: String) -> PostgresError {
        PostgresError(
            source: .client, sqlState: SQLState.clientDecodingFailure,
            message: "cannot decode column \"\(cell.columnName)\" (\(cell.type)) as \(type): \(reason)")
    }
}

extension PostgresCell {
    /// The non-NULL bytes, or a decoding error naming the column.
    func requireBytes<T>(as type: T.Type, accepting types: Set<PostgresType>) throws(PostgresError) -> [UInt8] {
        guard format == .binary else {
            throw .decoding(self, as: type, "text-format result (simpleQuery); decode typed values from query(_:)")
        }
        guard types.contains(self.type) else {
            throw .decoding(self, as: type, "unexpected column type")
        }
        guard let bytes else { throw .decoding(self, as: type, "value is NULL") }
        return bytes
    }
}

// MARK: - Big-endian helpers

@inline(__always)
func bigEndianBytes<I: FixedWidthInteger>(_ value: I) -> [UInt8] {
    withUnsafeBytes(of: value.bigEndian) { Array($0) }
}

@inline(__always)
func readBigEndian<I: FixedWidthInteger>(_ bytes: ArraySlice<UInt8>, as: I.Type = I.self) -> I {
    var value: I = 0
    for byte in bytes { value = (value << 8) | I(truncatingIfNeeded: byte) }
    return value
}

// MARK: - Integers

extension Int64: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .int8 }
    public var postgresBind: PostgresBind { PostgresBind(type: .int8, format: .binary, bytes: bigEndianBytes(self)) }

    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        let bytes = try cell.requireBytes(as: Int64.self, accepting: [.int2, .int4, .int8, .oid])
        switch (cell.type, bytes.count) {
        case (.int2, 2): self = Int64(readBigEndian(bytes[...], as: Int16.self))
        case (.int4, 4): self = Int64(readBigEndian(bytes[...], as: Int32.self))
        case (.oid, 4): self = Int64(readBigEndian(bytes[...], as: UInt32.self))
        case (.int8, 8): self = readBigEndian(bytes[...], as: Int64.self)
        default: throw .decoding(cell, as: Int64.self, "wrong length \(bytes.count)")
        }
    }
}

extension Int: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .int8 }
    public var postgresBind: PostgresBind { Int64(self).postgresBind }
    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        self = Int(try Int64(postgresCell: cell))
    }
}

extension Int32: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .int4 }
    public var postgresBind: PostgresBind { PostgresBind(type: .int4, format: .binary, bytes: bigEndianBytes(self)) }
    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        let wide = try Int64(postgresCell: cell)
        guard let value = Int32(exactly: wide) else { throw .decoding(cell, as: Int32.self, "out of range") }
        self = value
    }
}

// MARK: - Bool, Double

extension Bool: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .bool }
    public var postgresBind: PostgresBind { PostgresBind(type: .bool, format: .binary, bytes: [self ? 1 : 0]) }
    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        let bytes = try cell.requireBytes(as: Bool.self, accepting: [.bool])
        guard bytes.count == 1 else { throw .decoding(cell, as: Bool.self, "wrong length \(bytes.count)") }
        self = bytes[0] != 0
    }
}

extension Double: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .float8 }
    public var postgresBind: PostgresBind {
        PostgresBind(type: .float8, format: .binary, bytes: bigEndianBytes(bitPattern))
    }
    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        let bytes = try cell.requireBytes(as: Double.self, accepting: [.float4, .float8])
        switch bytes.count {
        case 4: self = Double(Float(bitPattern: readBigEndian(bytes[...], as: UInt32.self)))
        case 8: self = Double(bitPattern: readBigEndian(bytes[...], as: UInt64.self))
        default: throw .decoding(cell, as: Double.self, "wrong length \(bytes.count)")
        }
    }
}

// MARK: - Text

extension String: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .text }
    /// Sent in binary format with an explicit length, so a NUL byte is never silently truncated
    /// by a C string: the server rejects it (SQLSTATE 22021) instead. Store binary data as bytea.
    public var postgresBind: PostgresBind { PostgresBind(type: .text, format: .binary, bytes: Array(utf8)) }

    /// Binary cells of textual types (`jsonb` without its version byte), or any text-format cell
    /// as the server's text for it.
    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        if cell.format == .text {
            guard let bytes = cell.bytes else { throw .decoding(cell, as: String.self, "value is NULL") }
            guard let string = String(validating: bytes, as: UTF8.self) else {
                throw .decoding(cell, as: String.self, "not UTF-8")
            }
            self = string
            return
        }
        var bytes = try cell.requireBytes(
            as: String.self, accepting: [.text, .varchar, .bpchar, .name, .char, .json, .jsonb, .unknown])
        if cell.type == .jsonb {
            guard bytes.first == 1 else { throw .decoding(cell, as: String.self, "unknown jsonb version") }
            bytes.removeFirst()
        }
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw .decoding(cell, as: String.self, "not UTF-8")
        }
        self = string
    }
}

/// A `jsonb` value given as JSON text; the server validates it.
public struct PostgresJSONB: PostgresEncodable, PostgresDecodable, Equatable {
    public var text: String
    public init(_ text: String) { self.text = text }
    public static var postgresType: PostgresType { .jsonb }
    public var postgresBind: PostgresBind {
        PostgresBind(type: .jsonb, format: .binary, bytes: [1] + Array(text.utf8))
    }
    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        self.text = try String(postgresCell: cell)
    }
}

// MARK: - Bytes

/// `bytea`: arbitrary bytes, NUL included.
extension [UInt8]: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .bytea }
    public var postgresBind: PostgresBind { PostgresBind(type: .bytea, format: .binary, bytes: self) }
    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        self = try cell.requireBytes(as: [UInt8].self, accepting: [.bytea])
    }
}

extension Data: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .bytea }
    public var postgresBind: PostgresBind { PostgresBind(type: .bytea, format: .binary, bytes: Array(self)) }
    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        self = Data(try [UInt8](postgresCell: cell))
    }
}

// MARK: - UUID

extension UUID: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .uuid }
    public var postgresBind: PostgresBind {
        PostgresBind(type: .uuid, format: .binary, bytes: withUnsafeBytes(of: uuid) { Array($0) })
    }
    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        let bytes = try cell.requireBytes(as: UUID.self, accepting: [.uuid])
        guard bytes.count == 16 else { throw .decoding(cell, as: UUID.self, "wrong length \(bytes.count)") }
        var raw: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: bytes) }
        self = UUID(uuid: raw)
    }
}

// MARK: - Time

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01 (UTC).
private let postgresEpochOffsetSeconds: Double = 946_684_800

extension Date: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .timestamptz }
    /// `timestamptz` in binary: microseconds since 2000-01-01 UTC, so no time-zone or DateStyle
    /// setting can change the value.
    public var postgresBind: PostgresBind {
        let micros = Int64(((timeIntervalSince1970 - postgresEpochOffsetSeconds) * 1_000_000).rounded())
        return PostgresBind(type: .timestamptz, format: .binary, bytes: bigEndianBytes(micros))
    }
    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        let bytes = try cell.requireBytes(as: Date.self, accepting: [.timestamptz, .timestamp])
        guard bytes.count == 8 else { throw .decoding(cell, as: Date.self, "wrong length \(bytes.count)") }
        let micros = readBigEndian(bytes[...], as: Int64.self)
        switch micros {
        case .max: self = .distantFuture
        case .min: self = .distantPast
        default: self = Date(timeIntervalSince1970: postgresEpochOffsetSeconds + Double(micros) / 1_000_000)
        }
    }
}

// MARK: - Optional

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        if cell.bytes == nil {
            self = .none
        } else {
            self = .some(try Wrapped(postgresCell: cell))
        }
    }
}

// MARK: - Arrays of int8 (for `= ANY($1)`)

/// A one-dimensional `int8[]`, e.g. `WHERE id = ANY(\(PostgresInt8Array(ids)))`.
public struct PostgresInt8Array: PostgresEncodable, PostgresDecodable, Equatable {
    public var values: [Int64]
    public init(_ values: [Int64]) { self.values = values }
    public static var postgresType: PostgresType { .int8Array }
    public var postgresBind: PostgresBind {
        var bytes: [UInt8] = []
        bytes += bigEndianBytes(Int32(values.isEmpty ? 0 : 1))  // dimensions
        bytes += bigEndianBytes(Int32(0))  // has-nulls flag
        bytes += bigEndianBytes(PostgresType.int8.rawValue)
        if !values.isEmpty {
            bytes += bigEndianBytes(Int32(values.count))
            bytes += bigEndianBytes(Int32(1))  // lower bound
            for value in values {
                bytes += bigEndianBytes(Int32(8))
                bytes += bigEndianBytes(value)
            }
        }
        return PostgresBind(type: .int8Array, format: .binary, bytes: bytes)
    }
    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        let bytes = try cell.requireBytes(as: PostgresInt8Array.self, accepting: [.int8Array])
        guard bytes.count >= 12 else { throw .decoding(cell, as: PostgresInt8Array.self, "truncated header") }
        let dimensions = readBigEndian(bytes[0..<4], as: Int32.self)
        guard dimensions <= 1 else { throw .decoding(cell, as: PostgresInt8Array.self, "not one-dimensional") }
        guard dimensions == 1 else {
            self.values = []
            return
        }
        guard bytes.count >= 20 else { throw .decoding(cell, as: PostgresInt8Array.self, "truncated header") }
        let count = Int(readBigEndian(bytes[12..<16], as: Int32.self))
        guard count >= 0, bytes.count == 20 + 12 * count else {
            throw .decoding(cell, as: PostgresInt8Array.self, "NULL element or wrong length")
        }
        var values: [Int64] = []
        values.reserveCapacity(count)
        var offset = 20
        for _ in 0..<count {
            let length = Int(readBigEndian(bytes[offset..<offset + 4], as: Int32.self))
            guard length == 8 else { throw .decoding(cell, as: PostgresInt8Array.self, "NULL or bad element") }
            values.append(readBigEndian(bytes[offset + 4..<offset + 12], as: Int64.self))
            offset += 12
        }
        self.values = values
    }
}
