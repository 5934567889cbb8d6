import Foundation

/// What a user asked for: the payload of a `booking` stream entry.
///
/// Ingress builds it from a Telegram callback (`book:<slot_id>`, `cancel:<interview_id>`,
/// `reschedule:<interview_id>:<slot_id>`) or from `POST /v1/bookings`; the worker decodes it.
public struct BookingRequest: Sendable, Equatable, Codable {
    public enum Action: String, Sendable, Codable {
        case book, cancel, reschedule
    }

    public var action: Action
    public var userID: Int64
    /// For `book` and `reschedule`: the slot wanted.
    public var slotID: Int64?
    /// For `cancel` and `reschedule`: the interview concerned.
    public var interviewID: Int64?
    /// Where the bot's reply goes (Telegram); `nil` for API clients.
    public var chatID: Int64?
    /// The API client's idempotency key; its outcome is published to `lh:result:<request_id>`.
    public var requestID: String?
    /// Telegram's `callback_query.id`, kept for the reply.
    public var callbackQueryID: String?

    public init(
        action: Action, userID: Int64, slotID: Int64? = nil, interviewID: Int64? = nil, chatID: Int64? = nil,
        requestID: String? = nil, callbackQueryID: String? = nil
    ) {
        self.action = action
        self.userID = userID
        self.slotID = slotID
        self.interviewID = interviewID
        self.chatID = chatID
        self.requestID = requestID
        self.callbackQueryID = callbackQueryID
    }

    enum CodingKeys: String, CodingKey {
        case action
        case userID = "user_id"
        case slotID = "slot_id"
        case interviewID = "interview_id"
        case chatID = "chat_id"
        case requestID = "request_id"
        case callbackQueryID = "callback_query_id"
    }

    /// The stream entry kind for booking requests.
    public static let kind = "booking"

    /// What the request asks for, in one fixed text form: the action and its ids. Its SHA-256 is
    /// the request's digest, kept with the idempotency key (in the inbox row, and beside the API's
    /// result in Redis) so that the same key with a different request is told apart from a
    /// retry. Routing details (chat, callback id) are not part of it: a retry may carry new ones.
    public var canonicalForm: String {
        func text(_ value: Int64?) -> String { value.map(String.init) ?? "-" }
        return "\(action.rawValue) user=\(userID) slot=\(text(slotID)) interview=\(text(interviewID))"
    }

    /// Parses Telegram callback data: `book:<slot_id>`, `cancel:<interview_id>`,
    /// `reschedule:<interview_id>:<slot_id>`. `nil` for anything else.
    public init?(callbackData: String, userID: Int64, chatID: Int64?, callbackQueryID: String?) {
        let parts = callbackData.split(separator: ":", omittingEmptySubsequences: false)
        func id(_ index: Int) -> Int64? {
            guard parts.indices.contains(index), let value = Int64(parts[index]), value > 0 else { return nil }
            return value
        }
        switch (parts.first, parts.count) {
        case ("book", 2):
            guard let slot = id(1) else { return nil }
            self.init(action: .book, userID: userID, slotID: slot, chatID: chatID, callbackQueryID: callbackQueryID)
        case ("cancel", 2):
            guard let interview = id(1) else { return nil }
            self.init(
                action: .cancel, userID: userID, interviewID: interview, chatID: chatID,
                callbackQueryID: callbackQueryID)
        case ("reschedule", 3):
            guard let interview = id(1), let slot = id(2) else { return nil }
            self.init(
                action: .reschedule, userID: userID, slotID: slot, interviewID: interview, chatID: chatID,
                callbackQueryID: callbackQueryID)
        default:
            return nil
        }
    }

    /// Whether the fields the action needs are there.
    public var isComplete: Bool {
        switch action {
        case .book: slotID != nil
        case .cancel: interviewID != nil
        case .reschedule: slotID != nil && interviewID != nil
        }
    }
}
