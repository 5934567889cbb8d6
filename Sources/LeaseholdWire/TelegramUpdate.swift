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

extension TelegramUpdate {
    /// The synthesized decoding, and one check: Telegram's update ids are positive and
    /// increasing, so a negative `update_id` is no update of Telegram's and is refused (422) like
    /// any other malformed one, rather than enqueued under `tg:-…`. (Written in an extension so
    /// the memberwise initializer stays.)
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let updateID = try container.decode(Int64.self, forKey: .updateID)
        guard updateID >= 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .updateID, in: container, debugDescription: "must not be negative")
        }
        self.init(
            updateID: updateID,
            callbackQuery: try container.decodeIfPresent(CallbackQuery.self, forKey: .callbackQuery))
    }
}
