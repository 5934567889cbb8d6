import Foundation

/// What a load test measured and whether every invariant held; printed as a table or as JSON.
public struct LoadTestReport: Sendable, Codable, Equatable {
    /// One checked invariant.
    public struct Invariant: Sendable, Codable, Equatable {
        public var name: String
        public var passed: Bool
        public var detail: String
        /// `false` when the check could not run (it then does not fail the test).
        public var checked: Bool = true
    }

    public var run: String
    public var requests: Int
    public var concurrency: Int
    public var slots: Int
    public var requestsPerSlot: Int
    public var sent: Int
    public var accepted: Int
    /// Answered, but not 202 (e.g. 503 when over the high-water mark).
    public var rejected: Int
    /// No answer (connection refused, timeout).
    public var errors: Int
    /// Accepted requests whose outcome was committed.
    public var completed: Int
    public var sendSeconds: Double
    /// Committed bookings per second, first request sent → last commit.
    public var bookingsPerSecond: Double
    /// Request sent → 202 received.
    public var httpLatency: LatencySummary
    /// Accepted (XADD) → committed (just before COMMIT).
    public var endToEndLatency: LatencySummary
    public var outcomes: [String: Int]
    public var invariants: [Invariant]
    public var pgbench: Pgbench.Result?

    /// Every checked invariant held.
    public var passed: Bool { invariants.allSatisfy { $0.passed || !$0.checked } }

    /// Leasehold's throughput as a fraction of pgbench's, when pgbench ran.
    public var ratioToPgbench: Double? {
        guard let pgbench, pgbench.tps > 0 else { return nil }
        return (bookingsPerSecond / pgbench.tps * 1000).rounded() / 1000
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var object = (try? JSONSerialization.jsonObject(with: encoder.encode(self))) as? [String: Any] ?? [:]
        object["passed"] = passed
        object["ratioToPgbench"] = ratioToPgbench
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// The report for people.
    public var table: String {
        func row(_ label: String, _ value: String) -> String {
            label.padding(toLength: 38, withPad: " ", startingAt: 0) + value
        }
        func latency(_ summary: LatencySummary) -> String {
            "p50 \(summary.p50) ms   p95 \(summary.p95) ms   p99 \(summary.p99) ms   max \(summary.max) ms"
        }
        var lines = [
            "Leasehold load test \(run)",
            row("requests", "\(requests) (\(slots) slots × \(requestsPerSlot) per slot), \(concurrency) clients"),
            row("sent / accepted / rejected / errors", "\(sent) / \(accepted) / \(rejected) / \(errors)"),
            row("completed (committed outcomes)", "\(completed)"),
            row("outcomes", outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")),
            row("throughput end to end", "\(bookingsPerSecond) bookings/s"),
            row("HTTP latency (send → 202)", latency(httpLatency)),
            row("end to end (XADD → COMMIT)", latency(endToEndLatency)),
        ]
        if let pgbench {
            lines.append(row("pgbench, same transaction", "\(pgbench.tps) tps (\(pgbench.transactions) transactions, \(pgbench.clients) clients)"))
            if let ratio = ratioToPgbench { lines.append(row("Leasehold / pgbench", "\(Int((ratio * 100).rounded()))%")) }
        }
        lines.append("invariants:")
        for invariant in invariants {
            let mark = !invariant.checked ? "SKIP" : (invariant.passed ? "ok  " : "FAIL")
            lines.append("  \(mark) \(invariant.name) — \(invariant.detail)")
        }
        lines.append(passed ? "PASSED" : "FAILED: an invariant does not hold")
        return lines.joined(separator: "\n")
    }
}
