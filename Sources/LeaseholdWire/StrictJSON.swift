/// A strict check of a request body, run before `JSONDecoder` sees it: the body must be one
/// RFC 8259 JSON value that every later reader of it understands the same way.
///
/// `JSONDecoder` alone is not enough, because the body outlives it: a YooKassa body is
/// enqueued as received, decoded again by the worker and stored as `jsonb` in `webhook_log`. The
/// bad-input campaign (Tests/LeaseholdSystemTests/BadInputCampaignTests.swift) found bodies that
/// `JSONDecoder` accepts but that mean something else, or nothing, further on:
///
/// - **Duplicate keys.** `JSONDecoder` keeps the first value, PostgreSQL's `jsonb` the last, so
///   `{"event":"payment.canceled",…,"event":"payment.succeeded"}` would be validated as one event
///   and logged as the other. Refused: a webhook has no reason to repeat a key.
/// - **`\u0000`.** `JSONDecoder` accepts it; `jsonb` and `text` cannot hold it, so the worker's
///   INSERT fails on every attempt and the notification ends as a dead letter after ingress
///   answered 200. Refused, as is an unpaired surrogate escape (`\ud800`), which `jsonb` refuses too.
/// - **Numbers out of range.** `1e400` or a 70,000-digit number; refused when longer than
///   ``maxNumberLength`` characters, infinite as a `Double`, or non-zero yet rounding to zero.
/// - **Nesting.** Deeper than ``maxDepth`` is refused here, without recursion, so depth costs
///   nothing but the bytes.
///
/// Invalid UTF-8 anywhere is refused, and so is anything after the value but whitespace.
public enum StrictJSON {
    /// The deepest nesting of arrays and objects accepted (a Telegram update nests about 8).
    public static let maxDepth = 64
    /// The longest number token accepted, in characters.
    public static let maxNumberLength = 100

    /// Throws a 400 ``BodyRejection`` with a one-line reason unless `bytes` passes.
    public static func check(_ bytes: [UInt8]) throws(BodyRejection) {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw BodyRejection(.malformed, "body is not valid UTF-8")
        }
        var scanner = Scanner(bytes: bytes)
        try scanner.run()
    }

    private enum Container {
        case array
        /// The keys seen so far: slices of the body (a key without escapes) or of its decoded
        /// copy, so most keys cost no allocation of their own.
        case object(keys: Set<ArraySlice<UInt8>>)
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        var stack: [Container] = []

        init(bytes: [UInt8]) { self.bytes = bytes }

        func malformed(_ what: String) -> BodyRejection {
            BodyRejection(.malformed, "malformed JSON: \(what) at byte \(index)")
        }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        mutating func expect(_ byte: UInt8, _ what: String) throws(BodyRejection) {
            skipWhitespace()
            guard current == byte else { throw malformed(current == nil ? "unexpected end" : "expected \(what)") }
            index += 1
        }

        /// The value grammar, iteratively: a stack of open containers instead of recursion.
        mutating func run() throws(BodyRejection) {
            try value()
            while let top = stack.last {
                skipWhitespace()
                let close: UInt8
                if case .array = top { close = UInt8(ascii: "]") } else { close = UInt8(ascii: "}") }
                guard let byte = current else { throw malformed("unexpected end") }
                index += 1
                if byte == close {
                    stack.removeLast()
                } else if byte == UInt8(ascii: ",") {
                    if case .object = top { try key() }
                    try value()
                } else {
                    index -= 1
                    throw malformed("expected ',' or '\(Character(Unicode.Scalar(close)))'")
                }
            }
            skipWhitespace()
            guard current == nil else { throw malformed("unexpected data after the value") }
        }

        /// One value; an array or object is opened (pushed) and its first member read.
        mutating func value() throws(BodyRejection) {
            skipWhitespace()
            guard let byte = current else { throw malformed("unexpected end") }
            switch byte {
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                guard stack.count < StrictJSON.maxDepth else {
                    throw BodyRejection(.malformed, "JSON nested deeper than \(StrictJSON.maxDepth) levels")
                }
                index += 1
                let isArray = byte == UInt8(ascii: "[")
                stack.append(isArray ? .array : .object(keys: []))
                skipWhitespace()
                if current == UInt8(ascii: isArray ? "]" : "}") {
                    index += 1
                    stack.removeLast()
                } else if isArray {
                    try value()
                } else {
                    try key()
                    try value()
                }
            case UInt8(ascii: "\""):
                _ = try string(collect: false)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                try number()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default: throw malformed("unexpected character")
            }
        }

        /// `"key" :` inside the object on top of the stack, refusing a key it already has.
        mutating func key() throws(BodyRejection) {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw malformed("expected a key") }
            let key = try string(collect: true)
            guard case .object(var keys) = stack.removeLast() else { preconditionFailure("key outside an object") }
            guard keys.insert(key).inserted else {
                let shown = String(decoding: key.prefix(64), as: UTF8.self)  // control characters: see BodyRejection
                throw BodyRejection(.malformed, "duplicate key \"\(shown)\" in a JSON object")
            }
            stack.append(.object(keys: keys))
            try expect(UInt8(ascii: ":"), "':'")
        }

        mutating func literal(_ word: StaticString) throws(BodyRejection) {
            let expected = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
            guard bytes.count - index >= expected.count, bytes[index..<index + expected.count].elementsEqual(expected)
            else { throw malformed("unexpected character") }
            index += expected.count
        }

        /// A string from its opening quote; its decoded UTF-8 when `collect` (for keys): a slice of
        /// the body while it has no escape, a decoded copy from its first escape on.
        mutating func string(collect: Bool) throws(BodyRejection) -> ArraySlice<UInt8> {
            index += 1
            let start = index
            var escaped = false
            var decoded: [UInt8] = []
            while true {
                guard let byte = current else { throw malformed("unterminated string") }
                index += 1
                if collect && !escaped && byte == UInt8(ascii: "\\") {
                    escaped = true
                    decoded = Array(bytes[start..<index - 1])
                }
                switch byte {
                case UInt8(ascii: "\""):
                    return escaped ? decoded[...] : bytes[start..<index - 1]
                case 0x00..<0x20:
                    index -= 1
                    throw malformed("control character in a string")
                case UInt8(ascii: "\\"):
                    guard let escape = current else { throw malformed("unterminated string") }
                    index += 1
                    let simple: [UInt8: UInt8] = [
                        UInt8(ascii: "\""): 0x22, UInt8(ascii: "\\"): 0x5C, UInt8(ascii: "/"): 0x2F,
                        UInt8(ascii: "b"): 0x08, UInt8(ascii: "f"): 0x0C, UInt8(ascii: "n"): 0x0A,
                        UInt8(ascii: "r"): 0x0D, UInt8(ascii: "t"): 0x09,
                    ]
                    if let replacement = simple[escape] {
                        if escaped { decoded.append(replacement) }
                        continue
                    }
                    guard escape == UInt8(ascii: "u") else { throw malformed("invalid escape") }
                    var scalar = try hex4()
                    if scalar == 0 {
                        throw BodyRejection(.malformed, "JSON string contains \\u0000, which cannot be stored")
                    }
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard bytes.count - index >= 6, bytes[index] == UInt8(ascii: "\\"),
                            bytes[index + 1] == UInt8(ascii: "u")
                        else { throw BodyRejection(.malformed, "JSON string contains an unpaired surrogate escape") }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else {
                            throw BodyRejection(.malformed, "JSON string contains an unpaired surrogate escape")
                        }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw BodyRejection(.malformed, "JSON string contains an unpaired surrogate escape")
                    }
                    if escaped, let unicode = Unicode.Scalar(scalar) {
                        decoded.append(contentsOf: Array(String(unicode).utf8))
                    }
                default:
                    // UTF-8 was validated for the whole body up front.
                    if escaped { decoded.append(byte) }
                }
            }
        }

        mutating func hex4() throws(BodyRejection) -> UInt32 {
            guard bytes.count - index >= 4 else { throw malformed("unterminated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw malformed("invalid \\u escape")
                }
                value = value << 4 | UInt32(digit)
                index += 1
            }
            return value
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, then the range rules.
        mutating func number() throws(BodyRejection) {
            let start = index
            var significant = false
            func isDigit(_ byte: UInt8?) -> Bool { byte.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
            if current == UInt8(ascii: "-") { index += 1 }
            guard isDigit(current) else { throw malformed("invalid number") }
            if current == UInt8(ascii: "0") {
                index += 1
            } else {
                while isDigit(current) {
                    significant = true
                    index += 1
                }
            }
            let fractionOrExponent =
                current == UInt8(ascii: ".") || current == UInt8(ascii: "e") || current == UInt8(ascii: "E")
            if current == UInt8(ascii: ".") {
                index += 1
                guard isDigit(current) else { throw malformed("invalid number") }
                while isDigit(current) {
                    if current != UInt8(ascii: "0") { significant = true }
                    index += 1
                }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard isDigit(current) else { throw malformed("invalid number") }
                while isDigit(current) { index += 1 }
            }
            // An integer of up to 18 characters (ids, dates: most numbers in a webhook) is finite,
            // and zero only when written as zero: no need to parse it as a Double.
            if !fractionOrExponent && index - start <= 18 { return }
            let token = String(decoding: bytes[start..<index], as: UTF8.self)
            guard token.utf8.count <= StrictJSON.maxNumberLength, let value = Double(token), value.isFinite,
                value != 0 || !significant
            else {
                throw BodyRejection(.malformed, "JSON number \(token.prefix(32)) is out of range")
            }
        }
    }
}
