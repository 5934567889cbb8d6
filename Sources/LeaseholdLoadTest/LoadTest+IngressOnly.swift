import Foundation
import LeaseholdPostgres

extension LoadTest {
    /// The end of an `--ingress-only` run: remove what it left in Redis, check that nothing of it
    /// is left and that no worker processed any of it, and report the sending figures.
    func finishIngressOnly(
        plan: RequestPlan, stats: SendStatistics, backlog: RunBacklog, after: RunBacklog.Marks, sendDuration: Duration,
        lineBox: ProgressLineBox, postgres: PostgresClient
    ) async throws -> LoadTestReport {
        let (sent, accepted, failed) = stats.counts
        progress?.update(lineBox.next(phase: "done", sent: sent, accepted: accepted, completed: 0, failed: failed))
        progress?.finish()
        progress?.note(
            "sending done after \(Self.number(sendDuration.seconds)) s; removing the run's entries from \(backlog.streams.joined(separator: ", "))"
        )
        let removed: RunBacklog.Removal
        let left: (streamEntries: Int, keys: Int)
        do {
            removed = try await backlog.remove(after: after, sent: sent)
            left = try await backlog.remaining(after: after, sent: sent)
        } catch {
            throw LoadTestError.setup(
                "could not remove the run's entries from Redis (\(error)); they carry keys \(plan.keyPattern)")
        }
        if accepted == 0 { throw Self.nothingAccepted(stats) }
        let processed = try await postgres.query(
            "SELECT count(*) FROM inbox WHERE message_key ~ \(plan.keyPattern)"
        ).single().decode(Int.self, at: 0)
        let invariants: [LoadTestReport.Invariant] = [
            .init(
                name: "nothing of the run left in Redis", passed: left.streamEntries == 0 && left.keys == 0,
                detail: left.streamEntries == 0 && left.keys == 0
                    ? "removed \(removed.streamEntries) stream entries and \(removed.keys) result/digest keys"
                    : "\(left.streamEntries) stream entries and \(left.keys) result/digest keys left"),
            .init(
                name: "no worker processed the run's requests", passed: processed == 0,
                detail: processed == 0
                    ? "0 inbox rows for the run"
                    : "\(processed) inbox rows for the run: a worker consumes \(backlog.streams.joined(separator: ", ")), so the figure is "
                        + "not ingress alone"),
        ]
        var report = LoadTestReport(
            run: String(plan.run), input: configuration.input.rawValue, requests: sent,
            durationSeconds: configuration.duration.map(\.seconds), rate: configuration.rate,
            concurrency: configuration.concurrency, slots: configuration.slots,
            requestsPerSlot: configuration.requestsPerSlot, users: plan.users.count, sent: sent, accepted: accepted,
            rejected: stats.rejected, errors: stats.errors, ambiguous: stats.ambiguous, unansweredButProcessed: 0,
            statuses: Dictionary(uniqueKeysWithValues: stats.statuses.map { (String($0.key), $0.value) }),
            completed: 0, sendSeconds: Self.rounded(sendDuration.seconds), bookingsPerSecond: 0,
            httpLatency: stats.httpLatency, endToEndLatency: LatencySummary(LatencySummary.makeHistogram()),
            outcomes: [:], invariants: invariants, pgbench: nil, pgbenchFunction: nil)
        report.ingressOnly = true
        report.acceptedPerSecond = Self.perSecond(accepted, sendDuration)
        report.backlogRemoved = .init(streamEntries: removed.streamEntries, keys: removed.keys)
        if configuration.recordTimeline {
            report.timeline = LoadTestTimeline(samples: stats.samples, endToEnd: [])
        }
        return report
    }
}
