/// A forward reader over JSON that ``StrictJSON`` has validated: it does not re-check the
/// grammar, only what it needs to tell values apart, and every method answers `nil` or `false`
/// (giving up) rather than guess.
struct PlainJSONReader {
    let bytes: [UInt8]
    var index = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
    }

    /// Nothing but whitespace left.
    var atEnd: Bool {
        mutating get {
            skipWhitespace()
            return current == nil
        }
    }

    /// An object, each member's value handed to `member` with its key (which must consume the
    /// value and say whether it could); `false` when this is not an object, a key has escapes,
    /// or `member` gave up.
    mutating func object(_ member: (inout PlainJSONReader, Substring) -> Bool) -> Bool {
        skipWhitespace()
        guard current == UInt8(ascii: "{") else { return false }
        index += 1
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            index += 1
            return true
        }
        while true {
            skipWhitespace()
            guard let key = string() else { return false }
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { return false }
            index += 1
            guard member(&self, Substring(key)) else { return false }
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
        guard bytes.count - index >= 4, bytes[index] == UInt8(ascii: "n") else { return false }
        index += 4
        return true
    }

    /// A string without escapes; `nil` for another value or a string with a backslash.
    mutating func string() -> String? {
        skipWhitespace()
        guard current == UInt8(ascii: "\"") else { return nil }
        let start = index + 1
        var end = start
        while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
            if bytes[end] == UInt8(ascii: "\\") { return nil }
            end += 1
        }
        guard end < bytes.count else { return nil }
        index = end + 1
        // UTF-8 was validated by StrictJSON.
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// An integer written as one: an optional minus and 1–18 digits, no fraction, no exponent
    /// (so it fits an `Int64` exactly); `nil` for anything else.
    mutating func integer() -> Int64? {
        skipWhitespace()
        var position = index
        let negative = current == UInt8(ascii: "-")
        if negative { position += 1 }
        var value: Int64 = 0
        var digits = 0
        while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39 {
            digits += 1
            if digits > 18 { return nil }
            value = value * 10 + Int64(bytes[position] - 0x30)
            position += 1
        }
        guard digits > 0 else { return nil }
        if position < bytes.count,
            bytes[position] == UInt8(ascii: ".") || bytes[position] == UInt8(ascii: "e")
                || bytes[position] == UInt8(ascii: "E")
        {
            return nil
        }
        index = position
        return negative ? -value : value
    }

    /// Skips one value of any kind (containers by counting brackets outside strings).
    mutating func skipValue() -> Bool {
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
    mutating func strings(_ keys: [Substring]) -> [String??]? {
        var values = [String??](repeating: nil, count: keys.count)
        let read = object { reader, key in
            guard let position = keys.firstIndex(of: key) else { return reader.skipValue() }
            values[position] = reader.nullable { $0.string() }
            return values[position] != nil
        }
        return read ? values : nil
    }
}
