/// The forward JSON reader of the hot path: the booking payload, the `POST /v1/bookings` body, and
/// the members of Telegram updates and YooKassa notifications that Leasehold uses are read with
/// it, before and instead of `JSONDecoder`.
///
/// It reads only the plainest forms of JSON and gives up (`nil` or `false`) on anything else, so
/// that the caller can hand the same bytes to `JSONDecoder` and keep its exact verdict (its value
/// or its error). Whatever it reads, every JSON reader reads the same way:
///
/// - JSON whitespace (space, tab, LF, CR) around tokens, and nothing after the value but whitespace
///   (``atEnd``);
/// - strings without escapes or control characters: of printable ASCII (0x20…0x7E, no `"` or `\`)
///   on ``Input/unchecked`` bytes, of any other byte too on bytes ``StrictJSON`` has passed
///   (``Input/strictlyChecked``), whose UTF-8 it has validated;
/// - integers `0` or `-?[1-9][0-9]{0,17}` (at most 18 digits, so always within 64 bits), followed
///   by whitespace, `,` or `}`: `-0`, leading zeros, a fraction or an exponent give up;
/// - `null`, followed by the same;
/// - objects whose keys are strings as above.
///
/// Two ways to read: ``flatObject(_:)`` for bytes nothing has checked (the booking payload in the
/// worker, the bookings body in ingress), which checks all it accepts itself, duplicate keys
/// included, and leaves any other value to `JSONDecoder`; and member by member with ``object(_:)``
/// and ``skipValue()`` for a body ``StrictJSON`` has passed (webhooks), where the members not read
/// are skipped without a check of their own and duplicate keys have been refused already. On
/// unchecked bytes ``skipValue()`` always gives up.
struct PlainJSONReader {
    /// What the bytes have been through before the reader sees them.
    enum Input {
        /// Nothing: any bytes at all.
        case unchecked
        /// ``StrictJSON/check(_:)`` passed them: one RFC 8259 value, valid UTF-8, no duplicate keys.
        case strictlyChecked
    }

    /// A member of a flat object.
    enum Scalar: Equatable {
        case string(String)
        case integer(Int64)
        case null
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private let input: Input
    private var index = 0

    private init(bytes: UnsafeBufferPointer<UInt8>, input: Input) {
        self.bytes = bytes
        self.input = input
    }

    /// `read`'s answer with a reader at the start of `bytes`.
    static func read<Value>(
        _ bytes: some Collection<UInt8>, _ input: Input, _ read: (inout PlainJSONReader) -> Value?
    ) -> Value? {
        if let value = bytes.withContiguousStorageIfAvailable({ buffer in
            var reader = PlainJSONReader(bytes: buffer, input: input)
            return read(&reader)
        }) {
            return value
        }
        return Array(bytes).withUnsafeBufferPointer { buffer in
            var reader = PlainJSONReader(bytes: buffer, input: input)
            return read(&reader)
        }
    }

    /// `bytes` as one object of string, integer and `null` members, in the order written, with no
    /// key twice (readers disagree on which one counts) and nothing after it; `nil` for anything
    /// else (`true`, `false`, arrays and nested objects included).
    static func flatObject(_ bytes: some Collection<UInt8>) -> [(key: String, value: Scalar)]? {
        read(bytes, .unchecked) { reader in
            var members: [(key: String, value: Scalar)] = []
            members.reserveCapacity(8)
            let read = reader.object { reader, key in
                guard !members.contains(where: { $0.key == key }), let value = reader.scalar() else { return false }
                members.append((key, value))
                return true
            }
            return read && reader.atEnd ? members : nil
        }
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
    }

    /// What may follow a number or a literal inside an object: whitespace, `,` or `}`.
    private func isDelimiter(_ byte: UInt8?) -> Bool {
        switch byte {
        case 0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ","), UInt8(ascii: "}"): true
        default: false
        }
    }

    /// Nothing but whitespace left.
    var atEnd: Bool {
        mutating get {
            skipWhitespace()
            return current == nil
        }
    }

    /// An object, each member's value handed to `member` with its key (which must consume the
    /// value and say whether it could); `false` when this is not an object, a key is not a plain
    /// string, or `member` gave up.
    mutating func object(_ member: (inout PlainJSONReader, String) -> Bool) -> Bool {
        skipWhitespace()
        guard current == UInt8(ascii: "{") else { return false }
        index += 1
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            index += 1
            return true
        }
        while true {
            guard let key = string() else { return false }
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { return false }
            index += 1
            guard member(&self, key) else { return false }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return true
            default: return false
            }
        }
    }

    /// A string, an integer or `null`; `nil` for any other value or one not written plainly.
    mutating func scalar() -> Scalar? {
        skipWhitespace()
        guard let byte = current else { return nil }
        switch byte {
        case UInt8(ascii: "\""): return string().map(Scalar.string)
        case UInt8(ascii: "n"): return null() ? .null : nil
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return integer().map(Scalar.integer)
        default: return nil
        }
    }

    /// `{"id": <integer>, …}` (a user or a chat): the id; `nil` when missing or not plain.
    mutating func objectID() -> Int64? {
        var id: Int64?
        let read = object { reader, key in
            guard key == "id" else { return reader.skipValue() }
            id = reader.integer()
            return id != nil
        }
        return read ? id : nil
    }

    /// A member that may be `null`: `.some(nil)` for `null`, `.some(value)` when `read` reads
    /// one, `nil` (give up) otherwise.
    mutating func nullable<Value>(_ read: (inout PlainJSONReader) -> Value?) -> Value?? {
        if null() { return .some(nil) }
        guard let value = read(&self) else { return nil }
        return .some(value)
    }

    /// `null`, consumed; `false` (nothing consumed) for any other value.
    mutating func null() -> Bool {
        skipWhitespace()
        guard bytes.count - index >= 4, bytes[index] == UInt8(ascii: "n"), bytes[index + 1] == UInt8(ascii: "u"),
            bytes[index + 2] == UInt8(ascii: "l"), bytes[index + 3] == UInt8(ascii: "l"),
            isDelimiter(index + 4 < bytes.count ? bytes[index + 4] : nil)
        else { return false }
        index += 4
        return true
    }

    /// A string on the terms above; `nil` for another value, an escape or a byte it may not take.
    mutating func string() -> String? {
        skipWhitespace()
        guard current == UInt8(ascii: "\"") else { return nil }
        let start = index + 1
        var end = start
        while end < bytes.count {
            let byte = bytes[end]
            if byte == UInt8(ascii: "\"") {
                index = end + 1
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
            }
            guard byte >= 0x20, byte != UInt8(ascii: "\\"), byte <= 0x7E || input == .strictlyChecked else {
                return nil
            }
            end += 1
        }
        return nil
    }

    /// An integer on the terms above; `nil` for anything else.
    mutating func integer() -> Int64? {
        skipWhitespace()
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

    /// Skips one value of any kind (containers by counting brackets outside strings), on a body
    /// ``StrictJSON`` has passed; `false` (give up) on unchecked bytes.
    mutating func skipValue() -> Bool {
        guard input == .strictlyChecked else { return false }
        skipWhitespace()
        guard let first = current else { return false }
        switch first {
        case UInt8(ascii: "\""):
            return skipString()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while let byte = current {
                switch byte {
                case UInt8(ascii: "\""):
                    guard skipString() else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        index += 1
                        return true
                    }
                default: break
                }
                index += 1
            }
            return false
        default:
            // A number or a literal: up to the next delimiter.
            while let byte = current, byte != UInt8(ascii: ","), byte != UInt8(ascii: "}"), byte != UInt8(ascii: "]"),
                byte != 0x20, byte != 0x09, byte != 0x0A, byte != 0x0D
            {
                index += 1
            }
            return true
        }
    }

    /// Skips a string from its opening quote, escapes included.
    private mutating func skipString() -> Bool {
        index += 1
        while let byte = current {
            index += 1
            if byte == UInt8(ascii: "\\") {
                index += 1
            } else if byte == UInt8(ascii: "\"") {
                return true
            }
        }
        return false
    }
}

extension PlainJSONReader {
    /// An object whose members named in `keys` are strings or `null` (the others skipped): for
    /// each key, `nil` when absent, `.some(nil)` when `null`, `.some(text)`; `nil` (give up) when
    /// this is not such an object.
    mutating func strings(_ keys: [String]) -> [String??]? {
        var values = [String??](repeating: nil, count: keys.count)
        let read = object { reader, key in
            guard let position = keys.firstIndex(of: key) else { return reader.skipValue() }
            values[position] = reader.nullable { $0.string() }
            return values[position] != nil
        }
        return read ? values : nil
    }
}
