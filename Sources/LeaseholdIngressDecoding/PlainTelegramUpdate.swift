/// A Telegram update read straight from its bytes, without `JSONDecoder`, for a body that
/// ``StrictJSON`` has already passed (so it is one well-formed JSON value with no duplicate keys).
///
/// Ingress decodes one update per callback, and `JSONDecoder` was about an eighth of a busy
/// ingress's CPU on Telegram traffic in a profile (the strict check another sixteenth). This
/// reads the five fields Leasehold uses — `update_id`, `callback_query.id`,
/// `callback_query.from.id`, `callback_query.message.chat.id` (with `message_id`, which the
/// decoder requires) and `callback_query.data` — and skips everything else, as the decoder does.
///
/// It gives up (`nil`) on anything out of the ordinary in the members it reads, and the body then
/// goes to `JSONDecoder`, which gives the exact answer or the exact error: a key or string
/// written with escapes, a number with a fraction or an exponent or of more than 18 digits, a
/// member of another type than expected, a required member missing. So whenever it answers, the
/// answer is the decoder's (the tests and the fuzz target compare the two).
extension TelegramUpdate {
    init?(plain bytes: [UInt8]) {
        var reader = PlainJSONReader(bytes: bytes)
        var updateID: Int64?
        var callbackQuery: CallbackQuery??
        let read = reader.object { reader, key in
            switch key {
            case "update_id":
                updateID = reader.integer()
                return updateID != nil
            case "callback_query":
                guard let query = reader.nullable({ CallbackQuery(plain: &$0) }) else { return false }
                callbackQuery = query
                return true
            default:
                return reader.skipValue()
            }
        }
        guard read, reader.atEnd, let updateID else { return nil }
        self.init(updateID: updateID, callbackQuery: callbackQuery ?? nil)
    }
}

extension TelegramUpdate.CallbackQuery {
    fileprivate init?(plain reader: inout PlainJSONReader) {
        var id: String?
        var fromID: Int64?
        var message: TelegramUpdate.Message??
        var data: String??
        let read = reader.object { reader, key in
            switch key {
            case "id":
                id = reader.string()
                return id != nil
            case "from":
                fromID = reader.objectID()
                return fromID != nil
            case "message":
                guard let read = reader.nullable({ TelegramUpdate.Message(plain: &$0) }) else { return false }
                message = read
                return true
            case "data":
                guard let text = reader.nullable({ $0.string() }) else { return false }
                data = text
                return true
            default:
                return reader.skipValue()
            }
        }
        guard read, let id, let fromID else { return nil }
        self.init(id: id, from: TelegramUpdate.User(id: fromID), message: message ?? nil, data: data ?? nil)
    }
}

extension TelegramUpdate.Message {
    fileprivate init?(plain reader: inout PlainJSONReader) {
        var messageID: Int64?
        var chatID: Int64?
        let read = reader.object { reader, key in
            switch key {
            case "message_id":
                messageID = reader.integer()
                return messageID != nil
            case "chat":
                chatID = reader.objectID()
                return chatID != nil
            default:
                return reader.skipValue()
            }
        }
        guard read, let messageID, let chatID else { return nil }
        self.init(messageID: messageID, chat: TelegramUpdate.Chat(id: chatID))
    }
}

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
