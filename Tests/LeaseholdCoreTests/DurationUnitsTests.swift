import LeaseholdCore
import Testing

extension UnitTests {
    @Suite("Duration in whole units: truncated, rounded up where asked, clamped")
    struct DurationUnitsTests {
        @Test("whole units truncate toward zero, on both sides of zero")
        func truncation() {
            let duration = Duration.seconds(2) + .nanoseconds(1_500_999)
            #expect(duration.milliseconds == 2_001)
            #expect(duration.microseconds == 2_001_500)
            #expect(duration.saturatingNanoseconds == 2_001_500_999)
            #expect((.zero - duration).milliseconds == -2_001)
            #expect((.zero - duration).microseconds == -2_001_500)
        }

        @Test("milliseconds rounded up: never shorter than the duration")
        func roundedUp() {
            #expect(Duration.nanoseconds(1).millisecondsRoundedUp == 1)
            #expect(Duration.milliseconds(5).millisecondsRoundedUp == 5)
            #expect((Duration.milliseconds(5) + .nanoseconds(1)).millisecondsRoundedUp == 6)
            #expect(Duration.zero.millisecondsRoundedUp == 0)
            #expect(Duration.nanoseconds(-1_500_000).millisecondsRoundedUp == -1)
        }

        @Test("seconds as a Double keep the fraction")
        func fractionalSeconds() {
            #expect(Duration.milliseconds(1_250).seconds == 1.25)
            #expect(Duration.zero.seconds == 0)
        }

        @Test("counts beyond Int64 clamp instead of trapping")
        func clamping() {
            let long = Duration.seconds(Int64.max)
            #expect(long.saturatingNanoseconds == .max)
            #expect(long.microseconds == .max)
            #expect(long.milliseconds == .max)
            #expect(long.millisecondsRoundedUp == .max / 1_000_000 + 1)
            #expect((.zero - long).milliseconds == .min)
        }
    }
}
