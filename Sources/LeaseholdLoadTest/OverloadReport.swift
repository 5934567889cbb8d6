/// What an overload run measured: a flood at a fixed rate well above what the system can
/// process, then a recovery phase at a rate it can, with health endpoints probed throughout.
///
/// The questions it answers: does ingress shed the excess with `503` and `Retry-After` rather
/// than queue it without bound or stop answering; do `/healthz` and `/readyz` keep answering; is
/// the system back at full throughput soon after the flood ends. (Exactly-once processing of
/// every accepted request is the load test's own invariant; peak memory is in the process table.)
public struct OverloadReport: Sendable, Codable, Equatable {
    /// Answers of one phase, by what they mean.
    public struct Answers: Sendable, Codable, Equatable {
        public var sent = 0
        public var accepted = 0
        /// 503 (the backlog at the high-water mark, or Redis not answering).
        public var refused = 0
        /// Any other status.
        public var other = 0
        /// Not sent: the load generator was over a second late for them.
        public var dropped = 0
        /// HTTP latency of the accepted answers, from the scheduled send time; milliseconds.
        public var acceptedP50: Double?
        public var acceptedP99: Double?
        /// The same from the moment the client really sent it (without the generator's lag):
        /// how long ingress took to answer.
        public var acceptedSentP99: Double?
    }

    public var floodRate: Double
    public var floodSeconds: Double
    public var recoveryRate: Double
    public var recoverySeconds: Double
    public var flood: Answers
    public var recovery: Answers
    /// Requests sent per second in the flood: what the load generator managed of `floodRate`
    /// (the rest it dropped, ``Answers/dropped``).
    public var floodSentPerSecond: Double
    /// Outcomes committed per second over the flood's second half: the throughput under overload.
    public var floodCommittedPerSecond: Double
    /// Outcomes committed per second over the recovery phase.
    public var recoveryCommittedPerSecond: Double
    /// 503 answers without `Retry-After` (the whole run).
    public var withoutRetryAfter: Int
    /// Requests with no answer at all (the whole run).
    public var unanswered: Int
    /// How late the load generator sent, p99 and max (ms): when large, the rate asked of it was
    /// not what the system saw.
    public var generatorLagP99: Double
    public var generatorLagMax: Double
    /// From the flood's end to the last refused request of the recovery phase (0 when none was).
    public var refusalsEndedAfter: Double?
    /// From the flood's end to the first second from which, to the end of the run, every second
    /// committed at least 90 % of what was sent in it (the backlog drains meanwhile, so more).
    public var throughputBackAfter: Double?
    /// End-to-end p99 (XADD → COMMIT) of the requests sent in the recovery phase's last 5 s: the
    /// backlog is gone when this is back to normal.
    public var recoveryTailEndToEndP99: Double?
    /// The health probes of the run (also in the load test report's ``LoadTestReport/health``).
    public var health: [HealthProbe.Result]

    /// The later of the two: refusals ended and throughput back; `nil` when either did not
    /// happen before the run ended.
    public var recoveredAfter: Double? {
        guard let refusalsEndedAfter, let throughputBackAfter else { return nil }
        return max(refusalsEndedAfter, throughputBackAfter)
    }

    /// The bound the benchmark holds recovery to.
    public static let recoveryTarget = 5.0
    /// The bound on each role's peak resident set size, MiB.
    public static let rssTargetMiB = 100.0

    /// Builds the report from the run's samples and commits.
    ///
    /// - Parameters:
    ///   - samples: one per answered request (scheduled send time since the first request).
    ///   - committed: per committed request, its COMMIT time in seconds since the first request
    ///     and its end-to-end latency in µs.
    static func make(
        schedule: RateSchedule, samples: [SendStatistics.Sample],
        committed: [(index: Int, micros: Int64, committedAt: Double)], withoutRetryAfter: Int, unanswered: Int,
        lag: LatencySummary, dropped: [Int] = [], health: [HealthProbe.Result]
    ) -> OverloadReport {
        let floodSeconds = schedule.duration?.seconds ?? 0
        let recoverySeconds = schedule.recovery?.duration.seconds ?? 0
        let floodEnd = floodSeconds * 1000
        var flood = Answers()
        var recovery = Answers()
        var floodLatencies: [UInt32] = []
        var recoveryLatencies: [UInt32] = []
        var floodService: [UInt32] = []
        var recoveryService: [UInt32] = []
        var lastRefusal: Double?
        let totalSeconds = Int((floodSeconds + recoverySeconds).rounded(.up))
        var sentBySecond = [Int](repeating: 0, count: totalSeconds + 1)
        var sentSecond: [Int: Double] = [:]
        for sample in samples {
            let inFlood = Double(sample.sentMilliseconds) < floodEnd
            let second = min(totalSeconds, Int(sample.sentMilliseconds / 1000))
            sentBySecond[second] += 1
            sentSecond[sample.index] = Double(sample.sentMilliseconds) / 1000
            let refused = sample.status == 503 && !sample.accepted
            if inFlood {
                count(sample, refused: refused, into: &flood, latencies: &floodLatencies, service: &floodService)
            } else {
                count(
                    sample, refused: refused, into: &recovery, latencies: &recoveryLatencies, service: &recoveryService)
                if !sample.accepted {
                    lastRefusal = max(lastRefusal ?? 0, Double(sample.sentMilliseconds) / 1000 - floodSeconds)
                }
            }
        }
        let firstRecoveryIndex = schedule.firstPhaseRequests ?? .max
        for index in dropped {
            if index < firstRecoveryIndex { flood.dropped += 1 } else { recovery.dropped += 1 }
        }
        (flood.acceptedP50, flood.acceptedP99) = percentiles(&floodLatencies)
        (recovery.acceptedP50, recovery.acceptedP99) = percentiles(&recoveryLatencies)
        flood.acceptedSentP99 = percentiles(&floodService).1
        recovery.acceptedSentP99 = percentiles(&recoveryService).1

        var committedBySecond = [Int](repeating: 0, count: totalSeconds + 1)
        var tail: [UInt32] = []
        for row in committed {
            let second = Int(row.committedAt.rounded(.down))
            if (0...totalSeconds).contains(second) { committedBySecond[second] += 1 }
            if let sent = sentSecond[row.index], sent >= floodSeconds + recoverySeconds - 5, sent >= floodSeconds {
                tail.append(UInt32(clamping: max(1, row.micros)))
            }
        }
        func perSecond(_ range: Range<Int>) -> Double {
            guard !range.isEmpty else { return 0 }
            return Double(range.map { committedBySecond[$0] }.reduce(0, +)) / Double(range.count)
        }
        let floodWhole = Int(floodSeconds)
        let recoveryEnd = Int(floodSeconds + recoverySeconds)
        // The last second of the run is left out of the throughput check: its requests' commits
        // may fall after it.
        let checked = floodWhole..<max(floodWhole, recoveryEnd - 1)
        var backFrom: Int?
        for second in checked.reversed() {
            guard Double(committedBySecond[second]) >= 0.9 * Double(sentBySecond[second]) else { break }
            backFrom = second
        }
        tail.sort()
        return OverloadReport(
            floodRate: schedule.rate, floodSeconds: floodSeconds, recoveryRate: schedule.recovery?.rate ?? 0,
            recoverySeconds: recoverySeconds, flood: flood, recovery: recovery,
            floodSentPerSecond: floodSeconds > 0 ? (Double(flood.sent) / floodSeconds).rounded() : 0,
            floodCommittedPerSecond: perSecond((floodWhole / 2)..<floodWhole).rounded(),
            recoveryCommittedPerSecond: perSecond(floodWhole..<recoveryEnd).rounded(),
            withoutRetryAfter: withoutRetryAfter, unanswered: unanswered,
            generatorLagP99: lag.p99, generatorLagMax: lag.max,
            refusalsEndedAfter: lastRefusal.map { rounded($0) } ?? 0,
            throughputBackAfter: checked.isEmpty ? 0 : backFrom.map { Double($0) - floodSeconds }.map { max(0, $0) },
            recoveryTailEndToEndP99: tail.isEmpty ? nil : ms(tail[min(tail.count - 1, tail.count * 99 / 100)]),
            health: health)
    }

    private static func count(
        _ sample: SendStatistics.Sample, refused: Bool, into answers: inout Answers, latencies: inout [UInt32],
        service: inout [UInt32]
    ) {
        answers.sent += 1
        if sample.accepted {
            answers.accepted += 1
            latencies.append(sample.latencyMicroseconds)
            service.append(sample.latencyMicroseconds - min(sample.latencyMicroseconds, sample.lagMicroseconds))
        } else if refused {
            answers.refused += 1
        } else {
            answers.other += 1
        }
    }

    private static func percentiles(_ micros: inout [UInt32]) -> (Double?, Double?) {
        guard !micros.isEmpty else { return (nil, nil) }
        micros.sort()
        return (ms(micros[micros.count / 2]), ms(micros[min(micros.count - 1, micros.count * 99 / 100)]))
    }

    private static func ms(_ micros: UInt32) -> Double { (Double(micros) / 10).rounded() / 100 }
    private static func rounded(_ seconds: Double) -> Double { (seconds * 1000).rounded() / 1000 }

    /// The checks that fail the run: the system shed the flood the documented way, every health
    /// probe was answered 200, and it recovered before the run ended.
    public var checks: [LoadTestReport.Invariant] {
        var checks = [
            LoadTestReport.Invariant(
                name: "the flood went over what the system takes (some 503s)", passed: flood.refused > 0,
                detail: flood.refused > 0
                    ? "\(flood.refused) refused of \(flood.sent) sent"
                    : "no 503 at \(LoadTest.number(floodRate))/s: raise --rate or lower the high-water mark"),
            LoadTestReport.Invariant(
                name: "shed with 503 and Retry-After, every request answered",
                passed: withoutRetryAfter == 0 && unanswered == 0 && flood.other == 0 && recovery.other == 0,
                detail:
                    "\(withoutRetryAfter) 503s without Retry-After, \(unanswered) unanswered, "
                    + "\(flood.other + recovery.other) other statuses"),
        ]
        for result in health {
            checks.append(
                .init(
                    name: "\(result.name) answered 200 throughout", passed: result.failures == 0 && result.probes > 0,
                    detail: "\(result.probes) probes, \(result.failures) failed"
                        + (result.firstFailure.map { " (first: \($0))" } ?? "")))
        }
        checks.append(
            .init(
                name: "back at full throughput before the run ended", passed: recoveredAfter != nil,
                detail: recoveredAfter.map { "after \(LoadTest.number($0)) s" }
                    ?? "refusals or a throughput below what was sent lasted to the end of the recovery phase"))
        return checks
    }

    /// Each role's peak resident set size (MiB by role, as the caller measured it) under
    /// ``rssTargetMiB``: memory bounded under the flood.
    public static func memoryChecks(peakRSS: [String: Double]) -> [LoadTestReport.Invariant] {
        peakRSS.sorted(by: { $0.key < $1.key }).map { role, peak in
            .init(
                name: "\(role) peak RSS under \(Int(rssTargetMiB)) MiB", passed: peak < rssTargetMiB,
                detail: "\(String(format: "%.1f", peak)) MiB")
        }
    }

    /// The report's lines (after the load test's table).
    public var lines: [String] {
        func row(_ label: String, _ value: String) -> String {
            label.padding(toLength: 38, withPad: " ", startingAt: 0) + value
        }
        func answers(_ answers: Answers) -> String {
            "\(answers.sent) sent, \(answers.accepted) accepted, \(answers.refused) refused (503)"
                + (answers.other > 0 ? ", \(answers.other) other" : "")
                + (answers.dropped > 0 ? ", \(answers.dropped) dropped by the load generator (over 1 s late)" : "")
                + (answers.acceptedP99.map {
                    "; accepted HTTP p50 \(answers.acceptedP50 ?? 0) ms, p99 \($0) ms from the scheduled time, "
                        + "p99 \(answers.acceptedSentP99 ?? 0) ms from the actual send"
                } ?? "")
        }
        func met(_ passed: Bool) -> String { passed ? "met" : "NOT met" }
        var lines = [
            "overload: \(LoadTest.number(floodRate))/s for \(LoadTest.number(floodSeconds)) s, then "
                + "\(LoadTest.number(recoveryRate))/s for \(LoadTest.number(recoverySeconds)) s",
            row("flood", answers(flood)),
            row(
                "  sent / committed per second",
                "\(LoadTest.number(floodSentPerSecond)) / \(LoadTest.number(floodCommittedPerSecond)) "
                    + "(committed: the flood's second half)"),
            row(
                "  load generator behind schedule",
                "p99 \(generatorLagP99) ms, max \(generatorLagMax) ms (a request over 1 s late is dropped)"),
            row("recovery", answers(recovery)),
            row("  committed per second", LoadTest.number(recoveryCommittedPerSecond)),
            row(
                "  refusals ended / throughput back",
                "\(refusalsEndedAfter.map { "\(LoadTest.number($0)) s" } ?? "never") / "
                    + "\(throughputBackAfter.map { "\(LoadTest.number($0)) s" } ?? "never") after the flood"),
            row(
                "  recovered after",
                recoveredAfter.map {
                    "\(LoadTest.number($0)) s (target ≤ \(LoadTest.number(Self.recoveryTarget)) s: "
                        + "\(met($0 <= Self.recoveryTarget)))"
                } ?? "not within the run"),
        ]
        if let recoveryTailEndToEndP99 {
            lines.append(row("  end to end p99, last 5 s", "\(recoveryTailEndToEndP99) ms"))
        }
        return lines
    }
}
