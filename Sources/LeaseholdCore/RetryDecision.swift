import Foundation

/// What to do with a message whose processing just failed, as decided by ``RetryPolicy``.
public enum RetryDecision: Sendable, Equatable {
    /// Put the message back on its stream at `at` (that is, `now + delay`), as the next attempt.
    case retry(at: Date, delay: Duration)
    /// Stop trying: the message goes to the dead letters with `reason` (and its last error).
    case deadLetter(reason: String)

    /// The delay of a ``retry(at:delay:)``, `nil` for a dead letter.
    public var delay: Duration? {
        if case .retry(_, let delay) = self { return delay }
        return nil
    }

    /// The due time of a ``retry(at:delay:)``, `nil` for a dead letter.
    public var dueDate: Date? {
        if case .retry(let at, _) = self { return at }
        return nil
    }
}
