import Foundation

/// The Telegram bot token: a secret that must never reach a log line, an error description or
/// the `outbox.last_error` column.
///
/// The Bot API puts the token in the URL path (`https://api.telegram.org/bot<token>/sendMessage`),
/// so anything that prints a request URL — an HTTP client error, a redirect, a debug log — would
/// leak it. This type keeps the value out of string interpolation (`description` is `***`), and
/// ``redact(_:)`` scrubs it from any text that came from elsewhere before that text is logged or
/// stored.
public struct BotToken: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The secret itself: only ``BotAPIClient`` reads it, to build request URLs.
    let value: String

    /// Why a token was refused. The description never contains the token.
    public enum ValidationError: Error, Equatable, CustomStringConvertible {
        case empty
        case malformed

        public var description: String {
            switch self {
            case .empty: "the bot token is empty"
            case .malformed:
                "the bot token does not look like one (<bot id>:<secret>, letters, digits, - and _ only); "
                    + "it is not shown here"
            }
        }
    }

    /// Accepts Telegram's token shape, `<digits>:<secret>`, and refuses anything that could break
    /// out of the URL path (`/`, `?`, `#`, spaces, …).
    public init(_ value: String) throws(ValidationError) {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .empty }
        let parts = trimmed.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].allSatisfy({ $0.isASCII && $0.isNumber }),
            !parts[1].isEmpty,
            parts[1].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        else { throw .malformed }
        self.value = trimmed
    }

    public var description: String { "***" }
    public var debugDescription: String { "BotToken(***)" }

    /// `text` with every occurrence of the token (and of its secret half alone) replaced by `***`.
    public func redact(_ text: String) -> String {
        var text = text.replacingOccurrences(of: value, with: "***")
        if let secret = value.split(separator: ":", maxSplits: 1).last, secret.count >= 8 {
            text = text.replacingOccurrences(of: String(secret), with: "***")
        }
        return text
    }
}
