/// `Duration` in the units the servers, clocks and reports take: the one place a duration is turned
/// into a count of seconds, milliseconds, microseconds or nanoseconds.
///
/// Whole-unit counts truncate toward zero unless their name says otherwise, and clamp to `Int64`
/// instead of trapping (`Int64` nanoseconds last about 292 years).
extension Duration {
    /// The duration in whole nanoseconds, clamped to `Int64`.
    public var saturatingNanoseconds: Int64 {
        Self.whole(components, per: 1_000_000_000)
    }

    /// Whole milliseconds, rounded up (so a wait is never shorter than asked), clamped to `Int64`.
    public var millisecondsRoundedUp: Int64 {
        let nanoseconds = saturatingNanoseconds
        return nanoseconds / 1_000_000 + (nanoseconds % 1_000_000 > 0 ? 1 : 0)
    }

    /// Whole milliseconds, clamped to `Int64`.
    public var milliseconds: Int64 {
        Self.whole(components, per: 1_000)
    }

    /// Whole microseconds, clamped to `Int64`.
    public var microseconds: Int64 {
        Self.whole(components, per: 1_000_000)
    }

    /// Seconds as a `Double`, fractions included.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// `seconds × unitsPerSecond + attoseconds / (10^18 / unitsPerSecond)`, clamped to `Int64`.
    /// The two components of a `Duration` have the same sign, so the sum truncates toward zero.
    private static func whole(_ components: (seconds: Int64, attoseconds: Int64), per unitsPerSecond: Int64) -> Int64 {
        let (whole, overflow) = components.seconds.multipliedReportingOverflow(by: unitsPerSecond)
        if overflow { return components.seconds < 0 ? .min : .max }
        let (sum, overflowSum) = whole.addingReportingOverflow(
            components.attoseconds / (1_000_000_000_000_000_000 / unitsPerSecond))
        if overflowSum { return components.seconds < 0 ? .min : .max }
        return sum
    }
}
