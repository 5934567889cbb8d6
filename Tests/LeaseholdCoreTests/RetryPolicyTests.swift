import Foundation
import LeaseholdCore
import Testing

extension UnitTests {
    /// The retry policy is a pure function of (attempt, now, kind, random source): these tests pin the
    /// clock and the generator and check the schedule against its documented bounds.
    @Suite struct RetryPolicyTests {
        static let now = Date(timeIntervalSince1970: 1_700_000_000)

        /// `base × 2^(attempt-1)` capped at `cap`, in seconds.
        static func nominal(base: Double, cap: Double, attempt: Int) -> Double {
            min(cap, base * pow(2, Double(attempt - 1)))
        }

        @Test(
            "equal jitter: the delay of attempt n lies in [d/2, d], d = base·2^(n-1), and `at` is now + delay",
            arguments: 1...7)
        func delayWithinEqualJitterBounds(attempt: Int) throws {
            let policy = RetryPolicy()
            let nominal = Self.nominal(base: 1, cap: 300, attempt: attempt)
            var generator = SeededGenerator(seed: UInt64(attempt))
            for _ in 0..<500 {
                let decision = policy.decide(attempt: attempt, now: Self.now, kind: "booking", using: &generator)
                let delay = try #require(decision.delay).seconds
                #expect(delay >= nominal / 2 && delay <= nominal)
                let at = try #require(decision.dueDate)
                #expect(abs(at.timeIntervalSince(Self.now) - delay) < 1e-6)
            }
        }

        @Test(
            "the delay never exceeds the cap, however many attempts (2^8 s < cap < 2^9 s)",
            arguments: [8, 9, 10, 20, 63, 64, 1_000, 1_000_000])
        func delayNeverExceedsCap(attempt: Int) throws {
            let policy = RetryPolicy(defaults: .init(base: .seconds(1), maxDelay: .seconds(300), maxAttempts: .max))
            let nominal = Self.nominal(base: 1, cap: 300, attempt: min(attempt, 64))
            var generator = SeededGenerator(seed: 42)
            for _ in 0..<200 {
                let delay = try #require(
                    policy.decide(attempt: attempt, now: Self.now, kind: "x", using: &generator).delay
                )
                .seconds
                #expect(delay >= nominal / 2 && delay <= nominal)
                #expect(delay <= 300)
            }
            var top = MaximumGenerator()
            #expect(policy.decide(attempt: attempt, now: Self.now, kind: "x", using: &top).delay == .seconds(nominal))
        }

        @Test("the jitter really spreads over [d/2, d], and its top is d exactly")
        func jitterSpreads() throws {
            let policy = RetryPolicy()
            var generator = SeededGenerator(seed: 7)
            let delays = try (0..<1_000).map { _ in
                try #require(policy.decide(attempt: 4, now: Self.now, kind: "x", using: &generator).delay).seconds
            }
            #expect(delays.min()! < 4.4)
            #expect(delays.max()! > 7.6)
            var top = MaximumGenerator()
            #expect(policy.decide(attempt: 4, now: Self.now, kind: "x", using: &top).delay == .seconds(8))
        }

        @Test("dead-letters exactly when attempt maxAttempts fails", arguments: [1, 2, 3, 8, 25])
        func deadLettersAfterMaxAttempts(maxAttempts: Int) {
            let policy = RetryPolicy(defaults: .init(maxAttempts: maxAttempts))
            var generator = SeededGenerator(seed: 1)
            for attempt in 1..<maxAttempts {
                #expect(policy.decide(attempt: attempt, now: Self.now, kind: "booking", using: &generator).delay != nil)
            }
            for attempt in [maxAttempts, maxAttempts + 1, maxAttempts + 100] {
                let decision = policy.decide(attempt: attempt, now: Self.now, kind: "booking", using: &generator)
                guard case .deadLetter(let reason) = decision else {
                    Issue.record("attempt \(attempt) of \(maxAttempts) should dead-letter, got \(decision)")
                    continue
                }
                #expect(reason.contains("\(maxAttempts)"))
            }
        }

        @Test("a per-kind override wins over the defaults; other kinds keep the defaults")
        func perKindOverrideWins() throws {
            let policy = RetryPolicy(
                defaults: .init(base: .seconds(1), maxDelay: .seconds(300), maxAttempts: 8),
                overrides: ["payment.succeeded": .init(base: .seconds(10), maxDelay: .seconds(3_600), maxAttempts: 20)])
            var generator = SeededGenerator(seed: 3)

            let payment = try #require(
                policy.decide(attempt: 8, now: Self.now, kind: "payment.succeeded", using: &generator).delay
            ).seconds
            #expect(payment >= 640 && payment <= 1_280)
            #expect(
                policy.decide(attempt: 19, now: Self.now, kind: "payment.succeeded", using: &generator).delay != nil)
            #expect(
                policy.decide(attempt: 20, now: Self.now, kind: "payment.succeeded", using: &generator).delay == nil)

            #expect(policy.decide(attempt: 8, now: Self.now, kind: "booking", using: &generator).delay == nil)
            let booking = try #require(
                policy.decide(attempt: 3, now: Self.now, kind: "booking", using: &generator).delay
            )
            .seconds
            #expect(booking >= 2 && booking <= 4)
            #expect(policy.parameters(for: "unknown.kind") == policy.defaults)
        }

        @Test("the same seed gives the same decisions; another seed other ones")
        func deterministicWithInjectedGenerator() {
            let policy = RetryPolicy()
            func decisions(seed: UInt64) -> [RetryDecision] {
                var generator = SeededGenerator(seed: seed)
                return (1...10).map { policy.decide(attempt: $0, now: Self.now, kind: "booking", using: &generator) }
            }
            #expect(decisions(seed: 11) == decisions(seed: 11))
            #expect(decisions(seed: 11) != decisions(seed: 12))
        }

        @Test("degenerate settings stay sane: attempt 0 counts as 1, maxAttempts 0 as 1, base above cap is capped")
        func degenerateSettings() {
            var top = MaximumGenerator()
            #expect(RetryPolicy().decide(attempt: 0, now: Self.now, kind: "x", using: &top).delay == .seconds(1))
            #expect(
                RetryPolicy(defaults: .init(maxAttempts: 0)).decide(attempt: 1, now: Self.now, kind: "x").delay == nil)
            let capped = RetryPolicy(defaults: .init(base: .seconds(600), maxDelay: .seconds(60)))
            #expect(capped.decide(attempt: 1, now: Self.now, kind: "x", using: &top).delay == .seconds(60))
            let zero = RetryPolicy(defaults: .init(base: .zero))
            #expect(zero.decide(attempt: 5, now: Self.now, kind: "x").delay == .zero)
        }
    }
}
