import Foundation
import LeaseholdCore

/// What becomes of a claimed outbox row after its Bot API call: the decision, as a pure function of
/// the call's ``BotAPIOutcome``, the attempt number and the retry policy.
public enum OutboxCompletion: Sendable, Equatable {
    /// `sent`, with Telegram's `message_id` when the method returns a message.
    case sent(messageID: Int64?)
    /// `failed` for good, with the reason kept in `last_error`. Never retried.
    case failed(reason: String)
    /// Back to `pending`, due again after `delay` (5xx, network errors; attempts left).
    case retry(delay: Duration, reason: String)
    /// Back to `pending` after `retryAfter`, the attempt not counted, and the whole bot paused
    /// for `retryAfter` (every notifier sees the pause in `outbox_throttle`).
    case rateLimited(retryAfter: Duration, reason: String)
    /// Back to `pending` untouched, the attempt not counted: the call was not made, or failed for a
    /// reason that is not this row's (a rejected token, a shutdown before the call).
    case handBack(delay: Duration, reason: String)

    /// The kind of completion, for metrics and logs.
    public var label: String {
        switch self {
        case .sent: "sent"
        case .failed: "failed"
        case .retry: "retried"
        case .rateLimited: "rate_limited"
        case .handBack: "handed_back"
        }
    }

    /// Decides the fate of attempt number `attempt` whose call came to `outcome`.
    ///
    /// - A rejection (400, 403, other 4xx) fails the row at once: retrying cannot help and the
    ///   issue is the chat's (blocked bot, deleted chat), not ours.
    /// - A retryable failure follows `policy` (exponential backoff with equal jitter) and fails
    ///   the row with "gave up after N attempts" once the policy's maximum attempts are used.
    /// - A 429 is not the row's failure: it is retried after `retry_after` without using an attempt.
    public static func deciding<Generator: RandomNumberGenerator>(
        _ outcome: BotAPIOutcome, attempt: Int, policy: RetryPolicy, misconfiguredPause: Duration, now: Date,
        using generator: inout Generator
    ) -> OutboxCompletion {
        switch outcome {
        case .delivered(let messageID):
            return .sent(messageID: messageID)
        case .rejected(let code, let description):
            return .failed(reason: "\(code) \(description)")
        case .rateLimited(let retryAfter, let description):
            return .rateLimited(retryAfter: retryAfter, reason: "429 \(description)")
        case .botMisconfigured(let code, let description):
            return .handBack(
                delay: misconfiguredPause,
                reason: "\(code) \(description): Telegram refused the bot token or the API URL; not this reply's fault")
        case .retryable(let code, let description):
            let reason = code.map { "\($0) \(description)" } ?? "network: \(description)"
            switch policy.decide(attempt: attempt, now: now, kind: "outbox", using: &generator) {
            case .retry(_, let delay):
                return .retry(delay: delay, reason: reason)
            case .deadLetter:
                return .failed(reason: "gave up after \(attempt) attempts: \(reason)")
            }
        }
    }

    /// ``deciding(_:attempt:policy:misconfiguredPause:now:using:)`` with the system's random numbers.
    public static func deciding(
        _ outcome: BotAPIOutcome, attempt: Int, policy: RetryPolicy, misconfiguredPause: Duration, now: Date = Date()
    ) -> OutboxCompletion {
        var generator = SystemRandomNumberGenerator()
        return deciding(
            outcome, attempt: attempt, policy: policy, misconfiguredPause: misconfiguredPause, now: now,
            using: &generator)
    }
}
