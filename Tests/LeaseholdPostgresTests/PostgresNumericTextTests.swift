import Foundation
import Testing

@testable import LeaseholdPostgres

extension UnitTests {
    /// The binary NUMERIC → decimal text conversion, on hand-built wire values (no server needed).
    ///
    /// Wire format: ndigits, weight, sign, dscale (each 16-bit), then `ndigits` base-10000 digits; the
    /// first digit is worth 10000^weight.
    struct PostgresNumericTextTests {
        struct Wire: Sendable, CustomTestStringConvertible {
            var digits: [Int16]
            var weight: Int16
            var sign: UInt16
            var scale: Int16
            var text: String
            var testDescription: String { text }

            var bytes: [UInt8] {
                var bytes = bigEndianBytes(Int16(digits.count)) + bigEndianBytes(weight)
                bytes += bigEndianBytes(sign) + bigEndianBytes(scale)
                for digit in digits { bytes += bigEndianBytes(digit) }
                return bytes
            }
        }

        static let positive: UInt16 = 0x0000
        static let negative: UInt16 = 0x4000

        static let cases: [Wire] = [
            Wire(digits: [1990, 1000], weight: 0, sign: positive, scale: 2, text: "1990.10"),
            Wire(digits: [1], weight: -1, sign: negative, scale: 4, text: "-0.0001"),
            Wire(digits: [123], weight: -2, sign: positive, scale: 8, text: "0.00000123"),
            Wire(digits: [12], weight: -3, sign: negative, scale: 12, text: "-0.000000000012"),
            Wire(digits: [], weight: 0, sign: positive, scale: 0, text: "0"),
            Wire(digits: [], weight: 0, sign: positive, scale: 3, text: "0.000"),
            Wire(digits: [], weight: 0, sign: negative, scale: 0, text: "0"),
            Wire(digits: [1], weight: 1, sign: positive, scale: 0, text: "10000"),
            Wire(digits: [1], weight: 2, sign: negative, scale: 1, text: "-100000000.0"),
            Wire(
                digits: [1234, 5678, 9012, 3456, 7890, 1234, 5678, 9000], weight: 4, sign: positive, scale: 9,
                text: "12345678901234567890.123456789"),
            Wire(digits: [9, 9999, 9999], weight: 0, sign: positive, scale: 8, text: "9.99999999"),
            Wire(digits: [5, 1], weight: 0, sign: positive, scale: 4, text: "5.0001"),
        ]

        @Test("binary NUMERIC becomes exact decimal text", arguments: cases)
        func text(_ wire: Wire) throws {
            let cell = PostgresCell(type: .numeric, columnName: "n", bytes: wire.bytes)
            #expect(try Decimal.numericText(wire.bytes, cell: cell) == wire.text)
            let decimal = try Decimal(postgresCell: cell)
            #expect(decimal == Decimal(string: wire.text, locale: Locale(identifier: "en_US_POSIX")))
        }

        static let refused: [(String, [UInt8])] = [
            ("NaN", Wire(digits: [], weight: 0, sign: 0xC000, scale: 0, text: "").bytes),
            ("+Infinity", Wire(digits: [], weight: 0, sign: 0xD000, scale: 0, text: "").bytes),
            ("-Infinity", Wire(digits: [], weight: 0, sign: 0xF000, scale: 0, text: "").bytes),
            ("truncated header", [0, 1, 0]),
            ("length disagrees with digit count", [0, 2, 0, 0, 0, 0, 0, 0, 0, 1]),
            (
                "39 significant digits",
                Wire(
                    digits: [123, 4567, 8901, 2345, 6789, 123, 4567, 8901, 2345, 6789], weight: 9, sign: positive,
                    scale: 0, text: ""
                ).bytes
            ),
        ]

        @Test("values that are not finite or do not fit are refused", arguments: refused)
        func refusals(_ reason: String, _ bytes: [UInt8]) throws {
            let cell = PostgresCell(type: .numeric, columnName: "n", bytes: bytes)
            let error = #expect(throws: PostgresError.self) { try Decimal(postgresCell: cell) }
            #expect(error?.source == .client)
            #expect(error?.sqlState == SQLState.clientDecodingFailure)
        }

        @Test(
            "a Decimal binds as its exact text",
            arguments: ["1990.1", "-0.0001", "12345678901234567890.123456789", "0"])
        func encoding(_ text: String) throws {
            let value = try #require(Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")))
            let bind = value.postgresBind
            #expect(bind.type == .numeric)
            #expect(bind.format == .text)
            #expect(bind.bytes == Array(text.utf8))
        }
    }
}
