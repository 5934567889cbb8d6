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
    /// `api` or `telegram`.
    public var input: String
    /// Requests sent (handed to the HTTP client).
    public var requests: Int
    /// `--duration`, when the run was bounded by time.
    public var durationSeconds: Double?
    /// `--rate`, when requests arrived at a fixed rate instead of a closed loop.
    public var rate: Double?
    public var concurrency: Int
    public var slots: Int
    public var requestsPerSlot: Int
    public var users: Int
    public var sent: Int
    /// Answered with the accepted status (202 for the API, 200 for Telegram).
    public var accepted: Int
    /// Answered, but not accepted (e.g. 503 when over the high-water mark).
    public var rejected: Int
    /// No answer (connection refused, timeout).
    public var errors: Int
    /// Answered 503 with `Leasehold-Outcome: unknown`: ingress lost Redis in the middle of the
    /// enqueue, so the request may have been accepted. Like a request without an answer, each
    /// may be processed at most once, and is neither lost nor a violation either way.
    public var ambiguous = 0
    /// Requests without an answer that had reached the stream all the same (they have an outcome).
    public var unansweredButProcessed: Int
    /// Answers by HTTP status.
    public var statuses: [String: Int]
    /// Accepted requests whose outcome was committed.
    public var completed: Int
    public var sendSeconds: Double
    /// Committed outcomes per second, first request sent → last commit.
    public var bookingsPerSecond: Double
    /// Request sent (with `--rate`: scheduled) → answer received.
    public var httpLatency: LatencySummary
    /// Accepted (XADD) → committed (just before COMMIT).
    public var endToEndLatency: LatencySummary
    public var outcomes: [String: Int]
    public var invariants: [Invariant]
    /// pgbench running the booking statement by statement (what an application issuing each
    /// statement from its code can reach).
    public var pgbench: Pgbench.Result?
    /// pgbench running the booking in one round trip, `leasehold_book` as a prepared statement (the
    /// database's limit for what Leasehold ships).
    public var pgbenchFunction: Pgbench.Result?
    /// Accepted requests per second while sending: what ingress took in (`accepted / sendSeconds`).
    public var acceptedPerSecond: Double = 0
    /// `--ingress-only`: no outcome was waited for (``completed``, ``bookingsPerSecond``,
    /// ``endToEndLatency`` and ``outcomes`` stay empty), and the run's entries were removed from
    /// Redis afterwards.
    public var ingressOnly = false
    /// With `--ingress-only`: what the clean-up removed from Redis.
    public var backlogRemoved: BacklogRemoval?
    /// CPU time and peak memory per role over the measured interval, when the caller owns the
    /// processes (`leasehold demo`).
    public var processes: ProcessUsage?
    /// Second by second, when the run recorded it (for `--plot`); not part of the JSON.
    public var timeline: LoadTestTimeline?
    /// An overload run's figures (a flood, then a recovery phase).
    public var overload: OverloadReport?
    /// What the health probes (`--probe`) measured while sending.
    public var health: [HealthProbe.Result] = []

    /// Adds the overload run's memory checks, from the peak RSS of the ingress and worker
    /// processes in ``processes`` (a no-op unless both are there).
    public mutating func checkOverloadMemory() {
        guard overload != nil, let processes else { return }
        var peaks: [String: Double] = [:]
        for role in ["ingress", "worker"] {
            if let peak = processes.roles[role]?.peakRssMiB { peaks[role] = peak }
        }
        invariants += OverloadReport.memoryChecks(peakRSS: peaks)
    }

    /// What an `--ingress-only` run removed from Redis.
    public struct BacklogRemoval: Sendable, Codable, Equatable {
        /// The run's entries deleted from the input's stream (XDEL).
        public var streamEntries: Int
        /// Result and digest keys deleted (`--input api`: two per accepted request).
        public var keys: Int
    }

    enum CodingKeys: String, CodingKey {
        case run, input, requests, durationSeconds, rate, concurrency, slots, requestsPerSlot, users, sent, accepted
        case rejected, errors, ambiguous, unansweredButProcessed, statuses, completed, sendSeconds, bookingsPerSecond
        case httpLatency, endToEndLatency, outcomes, invariants, pgbench, pgbenchFunction
        case acceptedPerSecond, ingressOnly, backlogRemoved, processes, overload, health
    }

    /// Every checked invariant held.
    public var passed: Bool { invariants.allSatisfy { $0.passed || !$0.checked } }

    /// Leasehold's throughput as a fraction of pgbench's statement-by-statement figure.
    public var ratioToPgbench: Double? { ratio(to: pgbench) }

    /// Leasehold's throughput as a fraction of pgbench's one-round-trip figure.
    public var ratioToPgbenchFunction: Double? { ratio(to: pgbenchFunction) }

    private func ratio(to pgbench: Pgbench.Result?) -> Double? {
        guard let pgbench, pgbench.tps > 0 else { return nil }
        return (bookingsPerSecond / pgbench.tps * 1000).rounded() / 1000
    }

    /// The report as a JSON object, with `passed`, `ratioToPgbench` and `ratioToPgbenchFunction` added.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var object = (try? JSONSerialization.jsonObject(with: encoder.encode(self))) as? [String: Any] ?? [:]
        object["passed"] = passed
        object["ratioToPgbench"] = ratioToPgbench
        object["ratioToPgbenchFunction"] = ratioToPgbenchFunction
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// How the requests were sent, in words.
    public var shape: String {
        var words = "\(requests) \(LoadTestInput(rawValue: input)?.summary ?? input)"
        if let durationSeconds { words += " in \(LoadTest.number(durationSeconds)) s" }
        words += " from \(concurrency) clients"
        words += rate.map { " at \(LoadTest.number($0))/s" } ?? " (closed loop)"
        return words
    }

    /// The report for people.
    public var table: String {
        func row(_ label: String, _ value: String) -> String {
            label.padding(toLength: 38, withPad: " ", startingAt: 0) + value
        }
        func latency(_ summary: LatencySummary) -> String {
            "p50 \(summary.p50) ms   p95 \(summary.p95) ms   p99 \(summary.p99) ms   max \(summary.max) ms"
        }
        var answered = "\(sent) / \(accepted) / \(rejected) / \(errors)"
        if !statuses.isEmpty {
            answered +=
                "   (HTTP "
                + statuses.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }
                .joined(separator: ", ") + ")"
        }
        var lines = [
            "Leasehold load test, run \(run)" + (ingressOnly ? " (ingress only: no worker, no outcomes)" : ""),
            row("requests", shape),
            row("contention", "\(slots) fresh slots, \(requestsPerSlot) requests per slot in a row, \(users) users"),
            row("sent / accepted / rejected / errors", answered),
        ]
        if !ingressOnly { lines.append(row("completed (committed outcomes)", "\(completed)")) }
        lines.append(row("sending took", "\(sendSeconds) s"))
        if ambiguous > 0 {
            lines.append(row("outcome unknown (503 unknown, proxy 502/504; may be queued)", "\(ambiguous)"))
        }
        if unansweredButProcessed > 0 {
            lines.append(row("unanswered or unknown, yet processed", "\(unansweredButProcessed)"))
        }
        if ingressOnly {
            lines += [
                row("accepted by ingress", "\(acceptedPerSecond) requests/s"),
                row("HTTP latency (send → answer)", latency(httpLatency)),
            ]
            if let backlogRemoved {
                lines.append(
                    row(
                        "removed from Redis afterwards",
                        "\(backlogRemoved.streamEntries) stream entries, \(backlogRemoved.keys) result/digest keys"))
            }
        } else {
            lines += [
                row(
                    "outcomes",
                    outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")),
                row("accepted by ingress", "\(acceptedPerSecond) requests/s (while sending)"),
                row("throughput end to end", "\(bookingsPerSecond) bookings/s"),
                row("HTTP latency (send → answer)", latency(httpLatency)),
                row("end to end (XADD → COMMIT)", latency(endToEndLatency)),
            ]
        }
        for (name, result, ratio) in [
            ("pgbench, statement by statement", pgbench, ratioToPgbench),
            ("pgbench, one round trip", pgbenchFunction, ratioToPgbenchFunction),
        ] {
            guard let result else { continue }
            lines.append(
                row(
                    name,
                    "\(result.tps) tps (\(result.transactions) transactions, \(result.clients) clients, "
                        + "\(result.queryMode) protocol)"))
            if let ratio {
                lines.append(row("  Leasehold / that", "\(ratio) (\(Int((ratio * 100).rounded()))%)"))
            }
        }
        if let processes { lines += processTable(processes, row: row) }
        if let overload { lines += overload.lines }
        if !health.isEmpty {
            lines.append("health probes (a new connection every 100 ms while sending):")
            for result in health {
                lines.append(
                    row(
                        "  \(result.name)",
                        "\(result.probes) probes, p50 \(result.latency.p50) ms, p99 \(result.latency.p99) ms, "
                            + "max \(result.latency.max) ms, \(result.slow) over 100 ms"
                            + " (target none: \(result.slow == 0 ? "met" : "NOT met")), \(result.failures) failed"))
            }
        }
        lines.append("invariants:")
        for invariant in invariants {
            let mark = !invariant.checked ? "SKIP" : (invariant.passed ? "ok  " : "FAIL")
            lines.append("  \(mark) \(invariant.name) — \(invariant.detail)")
        }
        lines.append(passed ? "PASSED" : "FAILED: an invariant does not hold")
        return lines.joined(separator: "\n")
    }

    /// The "CPU per booking" section and the "peak RSS" lines.
    private func processTable(_ usage: ProcessUsage, row: (String, String) -> String) -> [String] {
        func cpu(_ seconds: Double, _ cores: Double, _ perBooking: Double?) -> String {
            "\(String(format: "%.2f", seconds)) s CPU (\(String(format: "%.2f", cores)) cores)"
                + (perBooking.map { "   \(String(format: "%.3f", $0)) ms per \(unit)" } ?? "")
        }
        let unit = usage.basis == ProcessUsage.acceptedRequests ? "request" : "booking"
        var lines = [
            row(
                ingressOnly ? "CPU per accepted request" : "CPU per booking",
                "over \(usage.intervalSeconds) s measured, \(usage.count) \(usage.basis)")
        ]
        let roles = ProcessUsage.order.compactMap { name in usage.roles[name].map { (name, $0) } }
        for (name, role) in roles {
            let label = role.processes > 1 ? "\(ProcessUsage.label(name)) ×\(role.processes)" : ProcessUsage.label(name)
            lines.append(row("  " + label, cpu(role.cpuSeconds, role.cores, role.cpuMsPerBooking)))
        }
        lines.append(row("  all", cpu(usage.totalCpuSeconds, usage.totalCores, usage.totalCpuMsPerBooking)))
        for (name, role) in roles where ["ingress", "worker"].contains(name) {
            guard let peak = role.peakRssMiB else { continue }
            lines.append(
                row(
                    "peak RSS \(name)",
                    "\(String(format: "%.1f", peak)) MiB"
                        + (role.processes > 1 ? " (the largest of \(role.processes) processes)" : "")))
        }
        return lines
    }

    /// The latency-over-time plot (SVG), when the run recorded a timeline.
    public var plot: String? {
        timeline.map { timeline in
            LatencyPlot.svg(
                timeline, title: "Leasehold load test, run \(run)",
                subtitles: [
                    "\(shape); \(slots) slots × \(requestsPerSlot) per slot, \(users) users",
                    "\(bookingsPerSecond) bookings/s end to end; HTTP p50 \(httpLatency.p50) / p99 \(httpLatency.p99) ms; "
                        + "end to end p50 \(endToEndLatency.p50) / p99 \(endToEndLatency.p99) ms"
                        + (ratioToPgbench.map { "; pgbench statements \(pgbench?.tps ?? 0) tps (ratio \($0))" } ?? "")
                        + (ratioToPgbenchFunction.map {
                            "; pgbench one round trip \(pgbenchFunction?.tps ?? 0) tps (ratio \($0))"
                        } ?? ""),
                ])
        }
    }
}
