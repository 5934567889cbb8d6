/// The shape of what `leasehold loadtest` sends.
public enum LoadTestInput: String, Sendable, Codable, CaseIterable {
    /// `POST /v1/bookings` `{request_id, user_id, slot_id}` with the bearer token; answered 202;
    /// inbox key `api:<request_id>`.
    case api
    /// `POST /telegram/webhook`: a Telegram `Update` whose callback query's data is
    /// `book:<slot_id>`, with `X-Telegram-Bot-Api-Secret-Token`; answered 200 with an
    /// `answerCallbackQuery` body; inbox key `tg:<update_id>`.
    case telegram

    /// The ingress path requests go to.
    public var path: String {
        switch self {
        case .api: "/v1/bookings"
        case .telegram: "/telegram/webhook"
        }
    }

    /// The status that means "in the stream": the request is accepted and must get an outcome.
    public var acceptedStatus: Int {
        switch self {
        case .api: 202
        case .telegram: 200
        }
    }
}
