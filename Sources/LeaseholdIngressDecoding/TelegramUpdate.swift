/// The parts of a Telegram `Update` that Leasehold reads (everything else is ignored).
/// See https://core.telegram.org/bots/api#update.
struct TelegramUpdate: Decodable {
    var updateID: Int64
    var callbackQuery: CallbackQuery?

    struct CallbackQuery: Decodable {
        var id: String
        var from: User
        var message: Message?
        var data: String?

        enum CodingKeys: String, CodingKey {
            case id, from, message, data
        }
    }

    struct User: Decodable {
        var id: Int64
    }

    struct Message: Decodable {
        var messageID: Int64
        var chat: Chat

        enum CodingKeys: String, CodingKey {
            case messageID = "message_id"
            case chat
        }
    }

    struct Chat: Decodable {
        var id: Int64
    }

    enum CodingKeys: String, CodingKey {
        case updateID = "update_id"
        case callbackQuery = "callback_query"
    }
}
