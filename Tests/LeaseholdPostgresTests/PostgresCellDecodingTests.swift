import Foundation
import Testing

@testable import LeaseholdPostgres

extension UnitTests {
    /// Decoding hand-built cells (no server needed): malformed or text-format bytes are refused with a
    /// client error, never misread and never a crash.
    struct PostgresCellDecodingTests {
        static func int8Array(count: Int32, elements: [(length: Int32, value: Int64)]) -> [UInt8] {
            var bytes = bigEndianBytes(Int32(1)) + bigEndianBytes(Int32(0)) + bigEndianBytes(PostgresType.int8.rawValue)
            bytes += bigEndianBytes(count) + bigEndianBytes(Int32(1))
            for element in elements {
                bytes += bigEndianBytes(element.length)
                if element.length > 0 { bytes += bigEndianBytes(element.value) }
            }
            return bytes
        }

        static let malformedArrays: [(String, [UInt8])] = [
            ("header only", Array(int8Array(count: 1, elements: []).prefix(12))),
            ("fewer elements than announced", int8Array(count: 3, elements: [(8, 1)])),
            ("element cut short", Array(int8Array(count: 1, elements: [(8, 1)]).dropLast(3))),
            ("NULL element", int8Array(count: 2, elements: [(8, 1), (-1, 0)])),
            ("negative count", int8Array(count: -1, elements: [])),
        ]

        @Test("malformed int8[] bytes are refused", arguments: malformedArrays)
        func malformedInt8Array(_ reason: String, _ bytes: [UInt8]) {
            let cell = PostgresCell(type: .int8Array, columnName: "ids", bytes: bytes)
            let error = #expect(throws: PostgresError.self) { try PostgresInt8Array(postgresCell: cell) }
            #expect(error?.sqlState == SQLState.clientDecodingFailure)
        }

        @Test("well-formed int8[] bytes decode")
        func wellFormedInt8Array() throws {
            let bytes = Self.int8Array(count: 2, elements: [(8, -5), (8, .max)])
            let cell = PostgresCell(type: .int8Array, columnName: "ids", bytes: bytes)
            #expect(try PostgresInt8Array(postgresCell: cell).values == [-5, .max])
            #expect(PostgresInt8Array([-5, .max]).postgresBind.bytes == bytes)
        }

        @Test("text-format cells (simpleQuery) read as String and are refused by typed decoders")
        func textFormat() throws {
            // The text "1234" is four bytes: read as binary it would be the int4 825373492.
            let cell = PostgresCell(type: .int4, columnName: "n", bytes: Array("1234".utf8), format: .text)
            #expect(try String(postgresCell: cell) == "1234")
            let error = #expect(throws: PostgresError.self) { try Int64(postgresCell: cell) }
            #expect(error?.sqlState == SQLState.clientDecodingFailure)
            #expect(throws: PostgresError.self) { try Int32(postgresCell: cell) }

            let json = PostgresCell(type: .jsonb, columnName: "j", bytes: Array(#"{"a": 1}"#.utf8), format: .text)
            #expect(try String(postgresCell: json) == #"{"a": 1}"#)
            let null = PostgresCell(type: .text, columnName: "t", bytes: nil, format: .text)
            #expect(try String?(postgresCell: null) == nil)
        }

        @Test(
            "wrong lengths for fixed-size types are refused",
            arguments: [
                PostgresCell(type: .int8, columnName: "c", bytes: [0, 1]),
                PostgresCell(type: .int4, columnName: "c", bytes: [0, 0, 0, 0, 0, 0, 0, 1]),
                PostgresCell(type: .bool, columnName: "c", bytes: []),
                PostgresCell(type: .float8, columnName: "c", bytes: [0, 0, 0]),
                PostgresCell(type: .uuid, columnName: "c", bytes: [1, 2, 3]),
                PostgresCell(type: .timestamptz, columnName: "c", bytes: [0]),
            ])
        func wrongLength(_ cell: PostgresCell) {
            #expect(throws: PostgresError.self) {
                switch cell.type {
                case .bool: _ = try Bool(postgresCell: cell)
                case .float8: _ = try Double(postgresCell: cell)
                case .uuid: _ = try UUID(postgresCell: cell)
                case .timestamptz: _ = try Date(postgresCell: cell)
                default: _ = try Int64(postgresCell: cell)
                }
            }
        }
    }
}
