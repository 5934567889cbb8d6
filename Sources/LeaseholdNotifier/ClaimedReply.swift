/// One outbox row claimed by this notifier (`status = 'sending'`), with what is needed to send it
/// and to record the result.
public struct ClaimedReply: Sendable, Equatable {
    /// `outbox.id`.
    public var id: Int64
    /// The inbox key of the message whose transaction wrote the reply (for logs).
    public var messageKey: String
    /// `outbox.chat_id`; `nil` for calls not addressed to a chat (`answerCallbackQuery`).
    public var chatID: Int64?
    /// The Bot API method, e.g. `sendMessage`.
    public var method: String
    /// The call's parameters, a JSON object's text, sent as the request body unchanged.
    public var payload: String
    /// This attempt's number, the first being 1 (429s and hand-backs do not count).
    public var attempt: Int
    /// `outbox.claimed_by` as written by this claim (`<notifier>#<n>`): the result is recorded
    /// only while the row still carries it, so a row taken back from a notifier presumed dead is
    /// never overwritten by that notifier's late answer.
    public var claim: String

    public init(
        id: Int64, messageKey: String, chatID: Int64?, method: String, payload: String, attempt: Int, claim: String
    ) {
        self.id = id
        self.messageKey = messageKey
        self.chatID = chatID
        self.method = method
        self.payload = payload
        self.attempt = attempt
        self.claim = claim
    }
}
