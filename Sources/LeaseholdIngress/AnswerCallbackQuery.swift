/// The webhook reply that answers a callback query at once, so the button stops spinning
/// (https://core.telegram.org/bots/api#making-requests-when-getting-updates).
struct AnswerCallbackQuery: Encodable {
    var method = "answerCallbackQuery"
    var callbackQueryID: String
    var text: String

    enum CodingKeys: String, CodingKey {
        case method
        case callbackQueryID = "callback_query_id"
        case text
    }
}
