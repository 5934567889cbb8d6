import Foundation

/// NUMERIC ↔ `Decimal`, exactly: no value ever passes through a binary float.
///
/// Encoding sends the decimal's canonical text (`1990.10` → `'1990.1'::numeric`), which the server
/// parses exactly. Decoding reads the binary NUMERIC (base-10000 digits, weight, display scale)
/// and rebuilds the decimal text, refusing values `Decimal` cannot hold (more than 38 significant
/// digits, NaN, infinities) instead of rounding them.
extension Decimal: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .numeric }

    public var postgresBind: PostgresBind {
        PostgresBind(type: .numeric, format: .text, bytes: Array(description.utf8))
    }

    public init(postgresCell cell: PostgresCell) throws(PostgresError) {
        let bytes = try cell.requireBytes(as: Decimal.self, accepting: [.numeric])
        let text = try Self.numericText(bytes, cell: cell)
        let significant = text.filter(\.isNumber).drop { $0 == "0" }.count
        guard significant <= 38, let value = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) else {
            throw .decoding(cell, as: Decimal.self, "\(text) does not fit a Decimal exactly")
        }
        self = value
    }

    /// The exact decimal text of a binary NUMERIC value.
    static func numericText(_ bytes: [UInt8], cell: PostgresCell) throws(PostgresError) -> String {
        guard bytes.count >= 8 else { throw .decoding(cell, as: Decimal.self, "truncated header") }
        let count = Int(readBigEndian(bytes[0..<2], as: Int16.self))
        let weight = Int(readBigEndian(bytes[2..<4], as: Int16.self))
        let sign = readBigEndian(bytes[4..<6], as: UInt16.self)
        let scale = Int(readBigEndian(bytes[6..<8], as: Int16.self))
        guard bytes.count == 8 + 2 * count else { throw .decoding(cell, as: Decimal.self, "wrong length") }
        switch sign {
        case 0x0000, 0x4000: break
        case 0xC000: throw .decoding(cell, as: Decimal.self, "NaN")
        default: throw .decoding(cell, as: Decimal.self, "infinity")
        }
        let digits = (0..<count).map { Int(readBigEndian(bytes[8 + 2 * $0..<10 + 2 * $0], as: Int16.self)) }
        func group(_ index: Int) -> Int { index >= 0 && index < digits.count ? digits[index] : 0 }
        func padded(_ value: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: 4 - text.count) + text
        }

        var integer = ""
        if weight < 0 {
            integer = "0"
        } else {
            for index in 0...weight {
                integer += index == 0 ? String(group(index)) : padded(group(index))
            }
        }
        var fraction = ""
        var index = weight + 1
        while fraction.count < scale {
            fraction += padded(group(index))
            index += 1
        }
        fraction = String(fraction.prefix(scale))
        let isNegative = sign == 0x4000 && (digits.contains { $0 != 0 })
        return (isNegative ? "-" : "") + integer + (fraction.isEmpty ? "" : "." + fraction)
    }
}
