/// One run, second by second: what the latency-over-time plot draws.
///
/// Seconds count from the first request. HTTP and end-to-end latency are grouped by the second
/// a request was (scheduled to be) sent, so one column describes the same requests; throughput
/// counts accepted requests by the second they were sent and committed outcomes by the second
/// of their COMMIT (PostgreSQL's clock).
public struct LoadTestTimeline: Sendable, Codable, Equatable {
    /// The figures of one second; latencies in milliseconds, `nil` when nothing was measured.
    public struct Second: Sendable, Codable, Equatable {
        public var second: Int
        public var accepted: Int
        public var committed: Int
        public var httpP50: Double?
        public var httpP99: Double?
        public var endToEndP50: Double?
        public var endToEndP99: Double?
    }

    public var seconds: [Second]

    public init(seconds: [Second]) {
        self.seconds = seconds
    }

    /// Builds the timeline from the clients' samples and the committed outcomes.
    ///
    /// - Parameters:
    ///   - endToEnd: per committed request: its index, end-to-end latency in µs, and its COMMIT
    ///     time in seconds since the first request.
    init(samples: [SendStatistics.Sample], endToEnd: [(index: Int, micros: Int64, committedAt: Double)]) {
        var http: [Int: [UInt32]] = [:]
        var accepted: [Int: Int] = [:]
        var sentSecond: [Int: Int] = [:]
        sentSecond.reserveCapacity(samples.count)
        for sample in samples {
            let second = Int(sample.sentMilliseconds / 1000)
            http[second, default: []].append(sample.latencyMicroseconds)
            if sample.accepted {
                accepted[second, default: 0] += 1
                sentSecond[sample.index] = second
            }
        }
        var endToEndBySecond: [Int: [UInt32]] = [:]
        var committed: [Int: Int] = [:]
        for row in endToEnd {
            if let second = sentSecond[row.index] {
                endToEndBySecond[second, default: []].append(UInt32(clamping: max(1, row.micros)))
            }
            committed[max(0, Int(row.committedAt.rounded(.down))), default: 0] += 1
        }
        let last = ([0] + Array(http.keys) + Array(committed.keys) + Array(endToEndBySecond.keys)).max() ?? 0
        seconds = (0...last).map { second in
            let httpSorted = (http[second] ?? []).sorted()
            let endToEndSorted = (endToEndBySecond[second] ?? []).sorted()
            return Second(
                second: second, accepted: accepted[second] ?? 0, committed: committed[second] ?? 0,
                httpP50: Self.percentile(httpSorted, 50), httpP99: Self.percentile(httpSorted, 99),
                endToEndP50: Self.percentile(endToEndSorted, 50), endToEndP99: Self.percentile(endToEndSorted, 99))
        }
    }

    /// Nearest-rank percentile of sorted microseconds, in milliseconds (two decimals).
    static func percentile(_ sorted: [UInt32], _ percent: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = max(1, Int((percent / 100 * Double(sorted.count)).rounded(.up)))
        return (Double(sorted[rank - 1]) / 10).rounded() / 100
    }
}
