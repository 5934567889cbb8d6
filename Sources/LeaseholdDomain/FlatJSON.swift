/// A reader for the simplest JSON objects only — the shape of the hot path's messages — meant to
/// be tried before `JSONDecoder` and to leave everything else to it.
///
/// It reads one object of string, integer and `null` members and gives up (`nil`) on anything
/// it does not fully understand, so that a caller can fall back to `JSONDecoder` with the same
/// input and keep `JSONDecoder`'s exact verdict (its acceptance and its errors). What it accepts
/// is a subset of RFC 8259 that every JSON reader understands the same way:
///
/// - one object, with JSON whitespace (space, tab, LF, CR) around tokens and nothing else after it;
/// - keys and string values of printable ASCII (0x20…0x7E) without `"` or `\`: no escapes, no
///   control characters, no bytes above 0x7F (so no UTF-8 to validate);
/// - integers `0` or `-?[1-9][0-9]{0,17}` (at most 18 digits, so always within 64 bits), not
///   followed by a fraction or an exponent: `-0`, `1.0` and `1e2` give up;
/// - `null`; `true`, `false`, arrays and nested objects give up;
/// - no key twice (readers disagree on which one counts).
///
/// The members are returned in the order written.
public struct FlatJSONObject {
    public enum Value: Equatable {
        case string(String)
        case integer(Int64)
        case null
    }

    public private(set) var members: [(key: String, value: Value)] = []

    /// `nil` unless `bytes` is one such object.
    public init?(_ bytes: some Collection<UInt8>) {
        let parsed: [(key: String, value: Value)]? =
            bytes.withContiguousStorageIfAvailable { buffer in
                var reader = Reader(bytes: buffer)
                return reader.object()
            }
            ?? {
                let copy = Array(bytes)
                return copy.withUnsafeBufferPointer { buffer in
                    var reader = Reader(bytes: buffer)
                    return reader.object()
                }
            }()
        guard let parsed else { return nil }
        members = parsed
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func object() -> [(key: String, value: Value)]? {
            skipWhitespace()
            guard current == UInt8(ascii: "{") else { return nil }
            index += 1
            var members: [(key: String, value: Value)] = []
            members.reserveCapacity(8)
            skipWhitespace()
            if current == UInt8(ascii: "}") {
                index += 1
            } else {
                while true {
                    skipWhitespace()
                    guard current == UInt8(ascii: "\""), let key = string() else { return nil }
                    guard !members.contains(where: { $0.key == key }) else { return nil }
                    skipWhitespace()
                    guard current == UInt8(ascii: ":") else { return nil }
                    index += 1
                    skipWhitespace()
                    guard let value = value() else { return nil }
                    members.append((key, value))
                    skipWhitespace()
                    guard let byte = current else { return nil }
                    index += 1
                    if byte == UInt8(ascii: "}") { break }
                    guard byte == UInt8(ascii: ",") else { return nil }
                }
            }
            skipWhitespace()
            return index == bytes.count ? members : nil
        }

        mutating func value() -> Value? {
            guard let byte = current else { return nil }
            switch byte {
            case UInt8(ascii: "\""):
                return string().map(Value.string)
            case UInt8(ascii: "n"):
                guard bytes.count - index >= 4, bytes[index + 1] == UInt8(ascii: "u"),
                    bytes[index + 2] == UInt8(ascii: "l"), bytes[index + 3] == UInt8(ascii: "l")
                else { return nil }
                index += 4
                return isDelimiter(current) ? .null : nil
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return integer().map(Value.integer)
            default:
                return nil
            }
        }

        /// A string from its opening quote, on the terms above.
        mutating func string() -> String? {
            index += 1
            let start = index
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                    index += 1
                    return text
                }
                guard byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "\\") else { return nil }
                index += 1
            }
            return nil
        }

        mutating func integer() -> Int64? {
            var negative = false
            if current == UInt8(ascii: "-") {
                negative = true
                index += 1
            }
            guard let first = current, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else { return nil }
            if first == UInt8(ascii: "0") {
                index += 1
                // `-0` is left to the full decoder; `0` must stand alone (no leading zeros).
                guard !negative, isDelimiter(current) else { return nil }
                return 0
            }
            var value: Int64 = 0
            var digits = 0
            while let byte = current, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                digits += 1
                guard digits <= 18 else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
                index += 1
            }
            guard isDelimiter(current) else { return nil }
            return negative ? -value : value
        }

        /// What may follow a number or a literal inside an object: whitespace, `,` or `}`.
        func isDelimiter(_ byte: UInt8?) -> Bool {
            switch byte {
            case 0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ","), UInt8(ascii: "}"): true
            default: false
            }
        }
    }
}

/// Writes JSON as `JSONEncoder` does with `.sortedKeys` (and no other formatting option): no
/// whitespace, strings escaped the encoder's way.
public struct JSONObjectWriter {
    public private(set) var bytes: [UInt8] = [UInt8(ascii: "{")]
    private var first = true

    public init(capacity: Int = 128) {
        bytes.reserveCapacity(capacity)
    }

    private mutating func key(_ key: StaticString) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    /// A member whose key needs no escaping; keys must be given in sorted order.
    public mutating func append(_ key: StaticString, _ value: String) {
        self.key(key)
        Self.appendString(value, to: &bytes)
    }

    public mutating func append(_ key: StaticString, _ value: Int64) {
        self.key(key)
        if value == 0 {
            bytes.append(UInt8(ascii: "0"))
            return
        }
        var digits: [UInt8] = []
        var magnitude = value.magnitude
        while magnitude > 0 {
            digits.append(UInt8(ascii: "0") + UInt8(magnitude % 10))
            magnitude /= 10
        }
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        bytes.append(contentsOf: digits.reversed())
    }

    /// The object, closed.
    public mutating func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    /// `text` as a JSON string escaped as `JSONEncoder` escapes it without
    /// `.withoutEscapingSlashes`: `"` and `\` and `/` with a backslash, `\b \t \n \f \r` by name,
    /// the other control characters below 0x20 as `\u00XX`, everything else as UTF-8.
    public static func appendString(_ text: String, to json: inout [UInt8]) {
        json.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"):
                json.append(UInt8(ascii: "\\"))
                json.append(byte)
            case 0x08: json.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x09: json.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x0A: json.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0C: json.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0D: json.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x00..<0x20:
                let hex: StaticString = "0123456789abcdef"
                json.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                json.append(hex.utf8Start[Int(byte >> 4)])
                json.append(hex.utf8Start[Int(byte & 0x0F)])
            default:
                json.append(byte)
            }
        }
        json.append(UInt8(ascii: "\""))
    }
}
