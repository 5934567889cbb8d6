/// The shape of what `leasehold loadtest` sends.
public enum LoadTestInput: String, Sendable, Codable, CaseIterable {
    /// `POST /v1/bookings` `{request_id, user_id, slot_id}` with the bearer token; answered 202;
    /// inbox key `api:<request_id>`.
    case api
    /// `POST /telegram/webhook`: a Telegram `Update` whose callback query's data is
    /// `book:<slot_id>`, with `X-Telegram-Bot-Api-Secret-Token`; answered 200 with an
    /// `answerCallbackQuery` body; inbox key `tg:<update_id>`.
    case telegram
    /// Both, alternating: even request indices go to the API, odd ones are Telegram callbacks
    /// (every slot gets requests of both shapes, so they contend with each other).
    case mixed

    /// The shape of request `index`: `.api` or `.telegram`, never `.mixed`.
    public func shape(ofRequest index: Int) -> LoadTestInput {
        switch self {
        case .api, .telegram: self
        case .mixed: index % 2 == 0 ? .api : .telegram
        }
    }

    /// Whether some requests are Telegram callbacks.
    public var sendsTelegram: Bool { self != .api }

    /// Whether some requests go to the API.
    public var sendsAPI: Bool { self != .telegram }

    /// The ingress path request `index` goes to.
    func path(ofRequest index: Int) -> String {
        shape(ofRequest: index) == .api ? "/v1/bookings" : "/telegram/webhook"
    }

    /// The status that means "in the stream" for request `index`: accepted, so it must get an
    /// outcome.
    public func acceptedStatus(ofRequest index: Int) -> Int {
        shape(ofRequest: index) == .api ? 202 : 200
    }

    /// What the progress line says is being sent.
    var summary: String {
        switch self {
        case .api: "POST /v1/bookings"
        case .telegram: "Telegram callback updates"
        case .mixed: "POST /v1/bookings and Telegram callback updates, alternating"
        }
    }
}
