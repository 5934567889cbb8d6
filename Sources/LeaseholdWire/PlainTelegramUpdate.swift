/// A Telegram update read straight from its bytes, without `JSONDecoder`, for a body that
/// ``StrictJSON`` has already passed (so it is one well-formed JSON value with no duplicate keys).
///
/// Ingress decodes one update per callback, and `JSONDecoder` was the largest single cost of a
/// busy ingress on Telegram traffic. This
/// reads the five fields Leasehold uses — `update_id`, `callback_query.id`,
/// `callback_query.from.id`, `callback_query.message.chat.id` (with `message_id`, which the
/// decoder requires) and `callback_query.data` — and skips everything else, as the decoder does.
///
/// It gives up (`nil`) on anything out of the ordinary in the members it reads, and the body then
/// goes to `JSONDecoder`, which gives the exact answer or the exact error: a key or string
/// written with escapes, a number not written as a plain integer of at most 18 digits (see
/// ``PlainJSONReader``), a member of another type than expected, a required member missing, a
/// negative `update_id` (which the decoder refuses). So whenever it answers, the answer is the
/// decoder's (the tests and the fuzz target compare the two).
extension TelegramUpdate {
    init?(plain bytes: [UInt8]) {
        guard let update = PlainJSONReader.read(bytes, .strictlyChecked, { Self(plain: &$0) }) else { return nil }
        self = update
    }

    private init?(plain reader: inout PlainJSONReader) {
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
        guard read, reader.atEnd, let updateID, updateID >= 0 else { return nil }
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
