import Foundation
import LeaseholdCore
import LeaseholdNotifier
import Testing

extension UnitTests {
    /// What happens to a row after its call: final, retried with backoff, paused, or handed back.
    @Suite("Outbox completion decisions")
    struct OutboxCompletionTests {
        let policy = RetryPolicy(defaults: .init(base: .seconds(1), maxDelay: .seconds(60), maxAttempts: 4))

        private func decide(_ outcome: BotAPIOutcome, attempt: Int) -> OutboxCompletion {
            var generator = SystemRandomNumberGenerator()
            return OutboxCompletion.deciding(
                outcome, attempt: attempt, policy: policy, misconfiguredPause: .seconds(30), now: Date(),
                using: &generator)
        }

        @Test func deliveredIsSentWithTheMessageID() {
            #expect(decide(.delivered(messageID: 9), attempt: 1) == .sent(messageID: 9))
        }

        @Test func aRejectionFailsAtOnceWithTelegramsReason() {
            #expect(
                decide(.rejected(code: 403, description: "Forbidden: bot was blocked by the user"), attempt: 1)
                    == .failed(reason: "403 Forbidden: bot was blocked by the user"))
        }

        @Test func retryableFailuresBackOffExponentiallyWithEqualJitter() {
            for attempt in 1...3 {
                guard
                    case .retry(let delay, let reason) = decide(
                        .retryable(code: 502, description: "Bad Gateway"), attempt: attempt)
                else {
                    Issue.record("attempt \(attempt) of 4 must be retried")
                    continue
                }
                let nominal = Duration.seconds(1 << (attempt - 1))
                #expect(delay >= nominal / 2 && delay <= nominal, "attempt \(attempt): \(delay)")
                #expect(reason == "502 Bad Gateway")
            }
        }

        @Test func theLastAttemptGivesUpForGood() {
            let completion = decide(.retryable(code: nil, description: "HTTPClientError.connectTimeout"), attempt: 4)
            #expect(completion == .failed(reason: "gave up after 4 attempts: network: HTTPClientError.connectTimeout"))
        }

        @Test func aRateLimitIsNotTheRowsFailure() {
            // Even on the last attempt: a 429 never uses up attempts.
            #expect(
                decide(
                    .rateLimited(retryAfter: .seconds(5), description: "Too Many Requests: retry after 5"), attempt: 4)
                    == .rateLimited(retryAfter: .seconds(5), reason: "429 Too Many Requests: retry after 5"))
        }

        @Test func aRejectedTokenHandsTheRowBack() {
            guard
                case .handBack(let delay, let reason) = decide(
                    .botMisconfigured(code: 401, description: "Unauthorized"), attempt: 4)
            else {
                Issue.record("a 401 must hand the row back")
                return
            }
            #expect(delay == .seconds(30))
            #expect(reason.hasPrefix("401 Unauthorized"))
        }
    }
}
