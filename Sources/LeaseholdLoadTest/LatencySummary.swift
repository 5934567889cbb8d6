import Histogram

/// Percentiles of one latency distribution, in milliseconds (recorded in microseconds by
/// HdrHistogram, three significant digits).
public struct LatencySummary: Sendable, Codable, Equatable {
    public var count: Int
    public var p50: Double
    public var p95: Double
    public var p99: Double
    public var max: Double
    public var mean: Double

    public init(_ histogram: Histogram<UInt64>) {
        count = Int(histogram.totalCount)
        func ms(_ micros: UInt64) -> Double { (Double(micros) / 1000 * 100).rounded() / 100 }
        p50 = ms(histogram.valueAtPercentile(50))
        p95 = ms(histogram.valueAtPercentile(95))
        p99 = ms(histogram.valueAtPercentile(99))
        max = ms(histogram.max)
        mean = (histogram.mean / 1000 * 100).rounded() / 100
    }

    /// An empty histogram covering 1 µs to 10 minutes.
    static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(
            lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    }
}
