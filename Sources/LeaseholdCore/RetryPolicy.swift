import Foundation

/// When to retry a failed message, and when to give up: a pure function of (attempt, now, kind).
///
/// ## Backoff
///
/// The *n*-th failed attempt waits `base × 2^(n-1)`, capped at ``Parameters/maxDelay``: 1 s, 2 s,
/// 4 s, … with the defaults. Exponential, because the usual cause of a transient failure (a
/// restarting PostgreSQL, lock contention, a provider outage) lasts longer the longer it has lasted;
/// capped, so that a message is never parked for hours after the cause went away.
///
/// ## Jitter: "equal jitter"
///
/// The delay actually used is half fixed, half random: with `d` the capped exponential delay, it is
/// drawn uniformly from `[d/2, d]`. Without jitter, every message that failed in the same incident
/// (a database restart fails hundreds at once) would come back at the same instant and fail
/// together again. "Full jitter" (`[0, d]`) spreads them best, but can retry at once; equal jitter
/// keeps a lower bound, so a retry never comes sooner than half the nominal delay — which is also
/// what lets tests check the schedule with fixed bounds.
///
/// ## Attempts
///
/// ``Parameters/maxAttempts`` counts deliveries, the first included: with 8, attempts 1 to 7 are
/// followed by a retry and the failure of attempt 8 dead-letters the message. A message that can
/// never succeed (undecodable payload, unknown kind) should not come here at all: dead-letter it
/// at once.
///
/// ## Determinism
///
/// The clock is the `now` argument and the random source a `RandomNumberGenerator` passed in
/// (`using:`), so tests give a fixed date and a seeded generator and get the same decisions every
/// run. The policy itself holds no state and is `Sendable`.
public struct RetryPolicy: Sendable, Equatable {
    /// Backoff and attempt limits for one kind of message.
    public struct Parameters: Sendable, Equatable {
        /// The delay after the first failed attempt (before jitter).
        public var base: Duration
        /// No delay exceeds this, jitter included.
        public var maxDelay: Duration
        /// Deliveries in all, the first included; the failure of this one dead-letters the message.
        /// Values below 1 count as 1.
        public var maxAttempts: Int

        public init(base: Duration = .seconds(1), maxDelay: Duration = .seconds(300), maxAttempts: Int = 8) {
            self.base = base
            self.maxDelay = maxDelay
            self.maxAttempts = maxAttempts
        }
    }

    /// Used for every kind without an entry in ``overrides``.
    public var defaults: Parameters
    /// Per message kind (`booking`, `telegram.callback`, `payment.succeeded`, …): a payment webhook
    /// may deserve more patience than a button press whose user has long gone.
    public var overrides: [String: Parameters]

    public init(defaults: Parameters = Parameters(), overrides: [String: Parameters] = [:]) {
        self.defaults = defaults
        self.overrides = overrides
    }

    /// The parameters that apply to `kind`.
    public func parameters(for kind: String) -> Parameters {
        overrides[kind] ?? defaults
    }

    /// The decision after attempt number `attempt` (1 for the first delivery) of a `kind` message
    /// failed at `now`, with the jitter drawn from `generator`.
    public func decide<Generator: RandomNumberGenerator>(
        attempt: Int, now: Date, kind: String, using generator: inout Generator
    ) -> RetryDecision {
        let parameters = parameters(for: kind)
        let attempt = max(1, attempt)
        let maxAttempts = max(1, parameters.maxAttempts)
        guard attempt < maxAttempts else {
            return .deadLetter(reason: "attempt \(attempt) failed and the limit for \(kind) is \(maxAttempts) attempts")
        }
        let nominal = Self.exponentialNanoseconds(
            base: parameters.base.saturatingNanoseconds, cap: parameters.maxDelay.saturatingNanoseconds,
            attempt: attempt)
        // Equal jitter: the upper half of [0, nominal] is random, the lower half fixed. `fixed`
        // rounds up so that fixed + random never exceeds `nominal` and never falls below nominal/2.
        let random = nominal / 2
        let fixed = nominal - random
        let nanoseconds = fixed + Int64.random(in: 0...random, using: &generator)
        let delay = Duration.nanoseconds(nanoseconds)
        return .retry(at: now.addingTimeInterval(Double(nanoseconds) / 1e9), delay: delay)
    }

    /// ``decide(attempt:now:kind:using:)`` with the system's random number generator.
    public func decide(attempt: Int, now: Date, kind: String) -> RetryDecision {
        var generator = SystemRandomNumberGenerator()
        return decide(attempt: attempt, now: now, kind: kind, using: &generator)
    }

    /// `base × 2^(attempt-1)`, at most `cap`, computed by doubling so it can neither overflow nor
    /// lose precision, whatever the attempt number.
    static func exponentialNanoseconds(base: Int64, cap: Int64, attempt: Int) -> Int64 {
        let cap = max(0, cap)
        var delay = max(0, min(base, cap))
        var doublings = attempt - 1
        while doublings > 0, delay < cap {
            delay = delay > cap / 2 ? cap : delay * 2
            doublings -= 1
        }
        return delay
    }
}
