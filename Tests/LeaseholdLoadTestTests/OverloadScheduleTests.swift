import Testing

@testable import LeaseholdLoadTest

extension UnitTests {
    /// The overload run's arithmetic, without servers: when each request is due, and how the report
    /// reads shedding and recovery from the samples and commits.
    @Suite("overload schedule and report")
    struct OverloadScheduleTests {
        @Test func theFloodThenTheRecoveryPhaseThenNothing() {
            let schedule = RateSchedule(
                rate: 100, duration: .seconds(2), recovery: .init(rate: 10, duration: .seconds(3)))
            #expect(schedule.firstPhaseRequests == 200)
            #expect(schedule.due(0) == .zero)
            #expect(schedule.due(150) == .milliseconds(1500))
            #expect(schedule.due(199) == .milliseconds(1990))
            // The recovery phase starts at the flood's end, at its own rate.
            #expect(schedule.due(200) == .seconds(2))
            #expect(schedule.due(205) == .milliseconds(2500))
            #expect(schedule.due(229) == .milliseconds(4900))
            #expect(schedule.due(230) == nil, "due at 5 s, the end of the run")
            #expect(schedule.totalDuration == .seconds(5))
        }

        @Test func withoutARecoveryPhaseTheRunEndsWithTheFlood() {
            let timed = RateSchedule(rate: 100, duration: .seconds(60))
            #expect(timed.firstPhaseRequests == 6000, "not 6,001 from a rounding error")
            #expect(timed.due(5999) != nil)
            #expect(timed.due(6000) == nil)
            // A request-count run: no end from the schedule, and no recovery phase.
            let counted = RateSchedule(rate: 4, duration: nil, recovery: .init(rate: 1, duration: .seconds(5)))
            #expect(counted.recovery == nil)
            #expect(counted.due(1_000_000) == .seconds(250_000))
        }

        /// A 4 s flood at 10/s that the system half refuses, then a 6 s recovery at 2/s whose first
        /// second still sees a refusal and whose commits keep up from its second second.
        @Test func sheddingAndRecoveryAreReadFromTheSamples() {
            var samples: [SendStatistics.Sample] = []
            var committed: [(index: Int, micros: Int64, committedAt: Double)] = []
            for index in 0..<40 {
                let accepted = index.isMultiple(of: 2)
                samples.append(
                    .init(
                        index: index, sentMilliseconds: UInt32(index * 100), latencyMicroseconds: 2_000,
                        status: accepted ? 202 : 503, accepted: accepted))
                // What the flood let in commits at 5/s.
                if accepted { committed.append((index, 50_000, Double(index) / 10 + 0.05)) }
            }
            for step in 0..<12 {
                let index = 40 + step
                let sentAt = 4_000 + step * 500
                let accepted = step != 1
                samples.append(
                    .init(
                        index: index, sentMilliseconds: UInt32(sentAt), latencyMicroseconds: 3_000,
                        status: accepted ? 202 : 503, accepted: accepted))
                // The first recovery second commits nothing (as if stalled), then every one commits.
                if accepted && step >= 2 { committed.append((index, 20_000, Double(sentAt) / 1000 + 0.02)) }
            }
            let report = OverloadReport.make(
                schedule: RateSchedule(
                    rate: 10, duration: .seconds(4), recovery: .init(rate: 2, duration: .seconds(6))),
                samples: samples, committed: committed, withoutRetryAfter: 0, unanswered: 0,
                lag: LatencySummary(LatencySummary.makeHistogram()), health: [])
            #expect(report.flood.sent == 40)
            #expect(report.flood.accepted == 20)
            #expect(report.flood.refused == 20)
            #expect(report.flood.acceptedP99 == 2)
            #expect(report.recovery.sent == 12)
            #expect(report.recovery.refused == 1)
            #expect(report.floodSentPerSecond == 10)
            #expect(report.floodCommittedPerSecond == 5)
            #expect(report.refusalsEndedAfter == 0.5, "the refusal was sent 0.5 s after the flood")
            #expect(report.throughputBackAfter == 1, "second 4 committed nothing; from second 5 on every one kept up")
            #expect(report.recoveredAfter == 1)
            #expect(report.checks.filter { !$0.passed }.isEmpty, "\(report.checks)")
        }

        @Test func aRunThatNeverRecoversOrWasNeverOverloadedFailsItsChecks() {
            let samples = (0..<20).map { index in
                SendStatistics.Sample(
                    index: index, sentMilliseconds: UInt32(index * 250), latencyMicroseconds: 1_000, status: 202,
                    accepted: true)
            }
            // Nothing commits after the flood: throughput never comes back.
            let committed = (0..<8).map { (index: $0, micros: Int64(1_000), committedAt: Double($0) * 0.25) }
            let report = OverloadReport.make(
                schedule: RateSchedule(rate: 4, duration: .seconds(2), recovery: .init(rate: 4, duration: .seconds(3))),
                samples: samples, committed: committed, withoutRetryAfter: 2, unanswered: 1,
                lag: LatencySummary(LatencySummary.makeHistogram()), health: [])
            #expect(report.throughputBackAfter == nil)
            #expect(report.recoveredAfter == nil)
            let failed = Set(report.checks.filter { !$0.passed }.map(\.name))
            #expect(
                failed == [
                    "the flood went over what the system takes (some 503s)",
                    "shed with 503 and Retry-After, every request answered",
                    "back at full throughput before the run ended",
                ])
            let memory = OverloadReport.memoryChecks(peakRSS: ["ingress": 52.5, "worker": 131])
            #expect(memory.map(\.passed) == [true, false])
        }
    }
}
