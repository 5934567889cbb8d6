import Foundation

/// What one Bot API call came to, classified by what the notifier must do next.
///
/// The Bot API answers every call with a JSON envelope, `{"ok":true,"result":…}` or
/// `{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user",
/// "parameters":{"retry_after":5}}`; ``classify(httpStatus:body:method:retryAfterHeader:)`` maps it
/// (or a transport failure, ``networkFailure(_:)``) to one of these cases.
public enum BotAPIOutcome: Sendable, Equatable {
    /// Telegram accepted the call. `messageID` is the `message_id` of the message sent or edited
    /// (`nil` for calls whose result is `true`, such as `answerCallbackQuery`).
    case delivered(messageID: Int64?)
    /// `429 Too Many Requests`: the whole bot must stay quiet for `retryAfter`; the call itself is
    /// retried after that, without counting as a failed attempt.
    case rateLimited(retryAfter: Duration, description: String)
    /// A failure that may pass: 5xx, a timeout, a refused or reset connection, an answer that is
    /// not the Bot API's. Retried with backoff, up to the maximum attempts.
    case retryable(code: Int?, description: String)
    /// Telegram refused this call for good: 400 (chat not found, message too long, query too old…),
    /// 403 (bot blocked by the user, kicked from the group) and other 4xx. Never retried.
    case rejected(code: Int, description: String)
    /// 401 Unauthorized or 404 Not Found: the token (or the base URL) is wrong. That is not this
    /// row's fault — every row would fail the same way — so the row is handed back untouched and
    /// the notifier stops sending until it is fixed.
    case botMisconfigured(code: Int, description: String)

    /// A short label for metrics and logs: `delivered`, `rate_limited`, `retryable`, `rejected`,
    /// `bot_misconfigured`.
    public var label: String {
        switch self {
        case .delivered: "delivered"
        case .rateLimited: "rate_limited"
        case .retryable: "retryable"
        case .rejected: "rejected"
        case .botMisconfigured: "bot_misconfigured"
        }
    }

    /// One line for people: `403 Forbidden: bot was blocked by the user`, `network: …`.
    public var summary: String {
        switch self {
        case .delivered(let messageID): "delivered" + (messageID.map { " (message_id \($0))" } ?? "")
        case .rateLimited(let retryAfter, let description): "429 \(description) (retry after \(retryAfter))"
        case .retryable(let code, let description): code.map { "\($0) \(description)" } ?? "network: \(description)"
        case .rejected(let code, let description): "\(code) \(description)"
        case .botMisconfigured(let code, let description): "\(code) \(description)"
        }
    }

    /// The longest `retry_after` honoured; a larger value (or a garbled one) is capped, so one odd
    /// answer cannot silence the bot for days.
    public static let maximumRetryAfter: Duration = .seconds(3600)

    /// Classifies an HTTP answer of the Bot API.
    ///
    /// - Parameters:
    ///   - httpStatus: the HTTP status code.
    ///   - body: the response body (the JSON envelope, or whatever a proxy sent instead).
    ///   - method: the Bot API method called; for `editMessage…` calls, "message is not modified"
    ///     means the message already reads as wanted, which counts as delivered.
    ///   - retryAfterHeader: the `Retry-After` header, used when a 429 has no `parameters.retry_after`.
    public static func classify(
        httpStatus: Int, body: [UInt8], method: String, retryAfterHeader: String? = nil
    ) -> BotAPIOutcome {
        let envelope = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        let ok = envelope?["ok"] as? Bool
        if (200..<300).contains(httpStatus), ok == true {
            let result = envelope?["result"] as? [String: Any]
            return .delivered(messageID: (result?["message_id"] as? NSNumber)?.int64Value)
        }

        let code = (envelope?["error_code"] as? NSNumber)?.intValue ?? httpStatus
        let telegramDescription = envelope?["description"] as? String
        let parameters = envelope?["parameters"] as? [String: Any]
        let description =
            telegramDescription
            ?? (envelope == nil
                ? "HTTP \(httpStatus) with a body that is not a Bot API answer: \(snippet(body))"
                : "HTTP \(httpStatus), error \(code)")

        guard envelope != nil, ok != nil else {
            // Not the Bot API talking (a proxy's error page, a truncated body): nothing says the
            // chat is at fault, so never a final failure.
            if httpStatus == 429 {
                return .rateLimited(retryAfter: retryAfter(nil, header: retryAfterHeader), description: description)
            }
            return .retryable(code: httpStatus, description: description)
        }
        switch code {
        case 429:
            return .rateLimited(
                retryAfter: retryAfter(parameters?["retry_after"] as? NSNumber, header: retryAfterHeader),
                description: description)
        case 401, 404:
            return .botMisconfigured(code: code, description: description)
        case 400 where method.hasPrefix("edit") && description.contains("message is not modified"):
            return .delivered(messageID: nil)
        case 400:
            if let migrated = (parameters?["migrate_to_chat_id"] as? NSNumber)?.int64Value {
                return .rejected(code: code, description: "\(description) (the group is now chat \(migrated))")
            }
            return .rejected(code: code, description: description)
        case 408:
            return .retryable(code: code, description: description)
        case 400..<500:
            return .rejected(code: code, description: description)
        default:
            // 5xx, and anything unexpected: may pass.
            return .retryable(code: code, description: description)
        }
    }

    /// A call that got no HTTP answer: connect refused or timed out, connection reset, read
    /// timeout. Retryable — although, for a timeout after the request was written, Telegram may
    /// have sent the message (README: "Bot replies", residual risk).
    public static func networkFailure(_ description: String) -> BotAPIOutcome {
        .retryable(code: nil, description: description)
    }

    /// The start of a body on one line, for an operator to recognise a proxy's error page.
    private static func snippet(_ body: [UInt8]) -> String {
        let text = String(decoding: body.prefix(200), as: UTF8.self)
        let line = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        return line.isEmpty ? "(empty)" : line + (body.count > 200 ? "…" : "")
    }

    private static func retryAfter(_ parameter: NSNumber?, header: String?) -> Duration {
        let seconds = parameter?.intValue ?? header.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? 1
        return min(.seconds(max(1, seconds)), maximumRetryAfter)
    }
}
