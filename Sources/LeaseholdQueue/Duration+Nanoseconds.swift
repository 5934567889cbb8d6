extension Duration {
    /// The duration in whole nanoseconds, clamped to `Int64` (about 292 years).
    public var saturatingNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflowSum) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflowSum { return seconds < 0 ? .min : .max }
        return sum
    }

    /// Whole milliseconds, rounded up (so a wait is never shorter than asked), clamped to `Int64`.
    public var millisecondsRoundedUp: Int64 {
        let nanoseconds = saturatingNanoseconds
        return nanoseconds / 1_000_000 + (nanoseconds % 1_000_000 > 0 ? 1 : 0)
    }
}
