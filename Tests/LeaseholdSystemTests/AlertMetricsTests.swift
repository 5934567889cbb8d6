import Foundation
import LeaseholdLocalStack
import LeaseholdTesting
import Testing

extension SystemTests {
    /// Every metric the alert rules (Compose/prometheus/alerts.yml) query is one a running role
    /// exports from the start: a rule on a name nothing exports never fires, and promtool's tests on
    /// synthetic series cannot tell.
    @Suite("Alert rules: every metric exists")
    struct AlertMetricsTests {
        /// The metric names in the rules' expressions: identifiers outside label matchers, ranges and
        /// `by (…)`, less PromQL's functions and keywords.
        static func metricNames(inRules text: String) -> Set<String> {
            var names = Set<String>()
            for expression in expressions(inRules: text) {
                var cleaned = ""
                var depth = 0
                for character in expression {
                    if character == "{" {
                        depth += 1
                    } else if character == "}" {
                        depth -= 1
                    } else if depth == 0 {
                        cleaned.append(character)
                    }
                }
                cleaned = cleaned.replacingOccurrences(
                    of: #"\b(by|without|on|ignoring)\s*\([^)]*\)"#, with: " ", options: .regularExpression)
                cleaned = cleaned.replacingOccurrences(of: #"\[[^\]]*\]"#, with: " ", options: .regularExpression)
                let identifiers = cleaned.split(whereSeparator: {
                    !($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":")
                })
                for identifier in identifiers.map(String.init)
                where identifier.first?.isLetter == true && !promQLWords.contains(identifier) {
                    names.insert(identifier)
                }
            }
            return names
        }

        /// Each rule's `expr`: on its line, or (after `expr: >` or `expr: |`) the lines indented deeper
        /// than the key.
        static func expressions(inRules text: String) -> [String] {
            var expressions: [String] = []
            var block: (indent: Int, lines: [String])?
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                let indent = line.prefix(while: { $0 == " " }).count
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if var current = block {
                    if trimmed.isEmpty || indent > current.indent {
                        current.lines.append(trimmed)
                        block = current
                        continue
                    }
                    expressions.append(current.lines.joined(separator: " "))
                    block = nil
                }
                guard trimmed.hasPrefix("expr:") else { continue }
                let value = trimmed.dropFirst("expr:".count).trimmingCharacters(in: .whitespaces)
                if value.hasPrefix(">") || value.hasPrefix("|") {
                    block = (indent, [])
                } else {
                    expressions.append(value)
                }
            }
            if let block { expressions.append(block.lines.joined(separator: " ")) }
            return expressions
        }

        static let promQLWords: Set<String> = [
            "sum", "max", "min", "avg", "count", "rate", "increase", "delta", "deriv", "absent", "vector", "and", "or",
            "unless", "by", "without", "histogram_quantile", "max_over_time", "min_over_time", "on", "ignoring", "le",
        ]

        @Test("the parser reads names, not functions or labels")
        func parser() {
            let names = Self.metricNames(
                inRules: """
                          - alert: A
                            expr: max by (stream) (leasehold_stream_oldest_pending_age_seconds) > 60
                          - alert: B
                            expr: >
                              (sum(increase(leasehold_worker_dead_letters_total[10m])) or vector(0))
                              + up{job=~"leasehold-.*"} == 0
                    """)
            #expect(
                names == ["leasehold_stream_oldest_pending_age_seconds", "leasehold_worker_dead_letters_total", "up"])
        }

        @Test("ingress, worker, supervisor and notifier export every metric the alert rules and the dashboard use")
        func everyRuleMetricIsExported() async throws {
            let rules = try String(
                contentsOf: LeaseholdExecutable.packageRoot.appendingPathComponent("Compose/prometheus/alerts.yml"),
                encoding: .utf8)
            // The dashboard's queries too (Compose/grafana/dashboards/leasehold.json).
            let dashboard = try Data(
                contentsOf: LeaseholdExecutable.packageRoot.appendingPathComponent(
                    "Compose/grafana/dashboards/leasehold.json"))
            let panels =
                (try JSONSerialization.jsonObject(with: dashboard) as? [String: Any])?["panels"] as? [[String: Any]]
                ?? []
            let queries = panels.flatMap {
                ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String }
            }
            #expect(queries.count >= 15)
            let dashboardNames = Self.metricNames(inRules: queries.map { "expr: \($0)" }.joined(separator: "\n"))
            // `up` is Prometheus' own; a histogram is queried by its `_bucket` series.
            let wanted = Self.metricNames(inRules: rules).union(dashboardNames).subtracting(["up"])
            #expect(wanted.count >= 10)
            try await FakeBotAPI.withServer { api in
                let workerPort = try freeLoopbackPort()
                let supervisorPort = try freeLoopbackPort()
                let notifierPort = try freeLoopbackPort()
                let stack = try await ProcessStack.start(
                    ingress: 1, workers: 1, workerEnvironment: ["LEASEHOLD_METRICS_PORT": String(workerPort)],
                    supervisors: 1, supervisorEnvironment: ["LEASEHOLD_METRICS_PORT": String(supervisorPort)])
                do {
                    // One booking, so the worker's per-outcome and latency series exist too.
                    let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
                    #expect(try await stack.book(requestID: "alert-1", userID: 1, slotID: slot).status == 202)
                    #expect(try await stack.outcome(of: "alert-1") == "booked")
                    try stack.startNotifier(
                        name: "notifier-0", botAPI: api.url,
                        environment: ["LEASEHOLD_METRICS_PORT": String(notifierPort)])
                    let endpoints = [
                        "ingress": "\(stack.ingressURL())/metrics",
                        "worker": "http://127.0.0.1:\(workerPort)/metrics",
                        "supervisor": "http://127.0.0.1:\(supervisorPort)/metrics",
                        "notifier": "http://127.0.0.1:\(notifierPort)/metrics",
                    ]
                    // Each role's first supervisor pass, notifier poll and readiness refresh: a few
                    // seconds; every family must be there within 30.
                    var exported: [String: Set<String>] = [:]
                    let deadline = ContinuousClock.now + .seconds(30)
                    while true {
                        for (role, url) in endpoints {
                            if let response = try? await stack.fetch(url), response.status == 200 {
                                exported[role] = Self.families(in: response.body)
                            }
                        }
                        let all = exported.values.reduce(into: Set<String>()) { $0.formUnion($1) }
                        if wanted.isSubset(of: all) || ContinuousClock.now >= deadline {
                            #expect(
                                wanted.subtracting(all).isEmpty,
                                "no role exports \(wanted.subtracting(all).sorted()); exported: \(exported.mapValues { $0.sorted() })"
                            )
                            break
                        }
                        try await Task.sleep(for: .milliseconds(500))
                    }
                    // Every role reports its process figures and whether it is ready.
                    for (role, families) in exported {
                        for name in ["process_cpu_seconds_total", "process_resident_memory_bytes", "leasehold_ready"] {
                            #expect(families.contains(name), "\(role) does not export \(name)")
                        }
                    }
                    #expect(exported.count == 4, "answered /metrics: \(exported.keys.sorted())")
                } catch {
                    await stack.shutdown()
                    throw error
                }
                await stack.shutdown()
            }
        }

        /// A supervisor that starts before any worker, on a Redis with no streams yet, creates the
        /// groups (as a worker would, from 0) instead of failing every pass on NOGROUP, and reports
        /// the streams from its first pass: the alerts read those gauges.
        @Test("a supervisor alone on an empty Redis makes the groups and reports the streams")
        func supervisorBeforeAnyWorker() async throws {
            let metricsPort = try freeLoopbackPort()
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 0, supervisors: 1,
                supervisorEnvironment: ["LEASEHOLD_METRICS_PORT": String(metricsPort)])
            var page = ""
            let deadline = ContinuousClock.now + .seconds(20)
            while !page.contains("leasehold_stream_length{stream=\"\(stack.stream("bookings"))\"}"),
                ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(250))
                page = (try? await stack.fetch("http://127.0.0.1:\(metricsPort)/metrics").body) ?? ""
            }
            #expect(page.contains("leasehold_stream_length{stream=\"\(stack.stream("bookings"))\"}"), "\(page)")
            let groups = try await stack.redis.send("XINFO", "GROUPS", stack.stream("bookings"))
            #expect(groups.array?.count == 1)
            // Enqueued before any worker: delivered to the first one that starts (the group is at 0).
            #expect(try await stack.book(requestID: "before-1", userID: 1, slotID: 1).status == 202)
            try stack.startWorker(name: "worker-late")
            #expect(try await stack.outcome(of: "before-1") != "pending")
            let log = stack.supervisors.map(\.output).joined()
            await stack.shutdown()
            #expect(!log.contains("maintenance pass failed"), "\(log)")
        }

        /// The metric families in a Prometheus text page: the names of its samples, with a histogram's
        /// or summary's suffixes kept (rules query those names).
        static func families(in page: String) -> Set<String> {
            Set(
                page.split(separator: "\n").compactMap { line -> String? in
                    guard !line.hasPrefix("#"), let end = line.firstIndex(where: { $0 == "{" || $0 == " " }) else {
                        return nil
                    }
                    return String(line[..<end])
                })
        }
    }
}
