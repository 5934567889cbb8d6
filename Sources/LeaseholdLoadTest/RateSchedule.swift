/// When each request of a fixed-rate run is due: `rate` per second for the run's duration and,
/// for an overload run, then `recovery.rate` per second for `recovery.duration` (the phase that
/// shows whether the system is back at full throughput once the flood ends).
///
/// Request `i` of the first phase is due at `i / rate`; request `first + j` of the recovery
/// phase at `duration + j / recovery.rate`, where `first` is the first phase's request count.
/// Without a duration the first phase never ends (a request-count run), and there is no
/// recovery phase.
public struct RateSchedule: Sendable, Equatable {
    public struct Phase: Sendable, Equatable {
        /// Requests per second.
        public var rate: Double
        public var duration: Duration

        public init(rate: Double, duration: Duration) {
            self.rate = rate
            self.duration = duration
        }
    }

    public var rate: Double
    /// The first phase's length; `nil` for a run bounded by its request count.
    public var duration: Duration?
    public var recovery: Phase?

    public init(rate: Double, duration: Duration?, recovery: Phase? = nil) {
        self.rate = rate
        self.duration = duration
        self.recovery = duration == nil ? nil : recovery
    }

    /// Requests due in the first phase (`nil` without a duration): those due before its end.
    public var firstPhaseRequests: Int? {
        duration.map { Self.count(rate: rate, over: $0) }
    }

    /// When request `index` is due, counted from the first request; `nil` when it would be due
    /// at or after the end of the run.
    public func due(_ index: Int) -> Duration? {
        guard let duration, let first = firstPhaseRequests else {
            return Self.offset(index, rate: rate)
        }
        if index < first { return Self.offset(index, rate: rate) }
        guard let recovery else { return nil }
        let offset = Self.offset(index - first, rate: recovery.rate)
        return offset < recovery.duration ? duration + offset : nil
    }

    /// The whole run's length; `nil` for a request-count run.
    public var totalDuration: Duration? {
        duration.map { $0 + (recovery?.duration ?? .zero) }
    }

    private static func offset(_ index: Int, rate: Double) -> Duration {
        .microseconds(Int64((Double(index) / rate * 1_000_000).rounded(.down)))
    }

    /// How many of `0, 1/rate, 2/rate, …` fall before `duration`.
    private static func count(rate: Double, over duration: Duration) -> Int {
        // Less a hair, so that 60 s at 100/s is 6,000 requests, not 6,001 from a rounding error.
        return Int((duration.seconds * rate - 1e-9).rounded(.up))
    }
}
