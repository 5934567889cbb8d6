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

extension BookingRequest {
    /// The stream entry's payload: the JSON `JSONEncoder` writes for this request with
    /// `.sortedKeys`, byte for byte (nil fields left out), written by hand because ingress builds
    /// one per request, and `JSONEncoder` (reflection, boxing) costs many times this.
    /// (`JSONEncoder` without `.sortedKeys` writes the same members in an order that changes from
    /// process to process; every reader of the payload decodes it, none compares its bytes.)
    public var payload: [UInt8] {
        var writer = JSONObjectWriter(capacity: 96 + (requestID?.utf8.count ?? 0) + (callbackQueryID?.utf8.count ?? 0))
        writer.append("action", action.rawValue)
        if let callbackQueryID { writer.append("callback_query_id", callbackQueryID) }
        if let chatID { writer.append("chat_id", chatID) }
        if let interviewID { writer.append("interview_id", interviewID) }
        if let requestID { writer.append("request_id", requestID) }
        if let slotID { writer.append("slot_id", slotID) }
        writer.append("user_id", userID)
        return writer.finish()
    }

    /// Decodes a payload exactly as `JSONDecoder().decode(BookingRequest.self, from:)` does
    /// (`nil` where it throws), read by ``PlainJSONReader/flatObject(_:)`` when the payload has the plain shape
    /// ingress writes and by `JSONDecoder` otherwise: the worker decodes one per message, and
    /// `JSONDecoder` costs many times this reader.
    public init?(payload: [UInt8]) {
        if let request = Self.plain(payload) {
            self = request
        } else if let request = try? JSONDecoder().decode(BookingRequest.self, from: Data(payload)) {
            self = request
        } else {
            return nil
        }
    }

    /// The request when `payload` is a flat object (``PlainJSONReader/flatObject(_:)``) with only
    /// this type's keys, each of the right type (an optional one also `null`); `nil` otherwise,
    /// `JSONDecoder` deciding then.
    static func plain(_ payload: [UInt8]) -> BookingRequest? {
        guard let members = PlainJSONReader.flatObject(payload) else { return nil }
        var action: Action?
        var userID: Int64?
        var request = BookingRequest(action: .book, userID: 0)
        func integer(_ value: PlainJSONReader.Scalar) -> Int64?? {
            switch value {
            case .integer(let number): .some(number)
            case .null: .some(nil)
            case .string: nil
            }
        }
        func string(_ value: PlainJSONReader.Scalar) -> String?? {
            switch value {
            case .string(let text): .some(text)
            case .null: .some(nil)
            case .integer: nil
            }
        }
        for (key, value) in members {
            switch key {
            case "action":
                guard case .string(let text) = value, let known = Action(rawValue: text) else { return nil }
                action = known
            case "user_id":
                guard case .integer(let number) = value else { return nil }
                userID = number
            case "slot_id":
                guard let number = integer(value) else { return nil }
                request.slotID = number
            case "interview_id":
                guard let number = integer(value) else { return nil }
                request.interviewID = number
            case "chat_id":
                guard let number = integer(value) else { return nil }
                request.chatID = number
            case "request_id":
                guard let text = string(value) else { return nil }
                request.requestID = text
            case "callback_query_id":
                guard let text = string(value) else { return nil }
                request.callbackQueryID = text
            default:
                return nil
            }
        }
        guard let action, let userID else { return nil }
        request.action = action
        request.userID = userID
        return request
    }
}
