import Foundation
import LeaseholdTesting
import Testing
import Yams

extension UnitTests {
    /// Compose/grafana: the dashboard is a well-formed Grafana dashboard (the fields Grafana's
    /// dashboard model requires, panels on its 24-column grid without overlaps, unique ids), every
    /// query is valid PromQL (promtool parses each as a recording rule) against the provisioned data
    /// source, and the provisioning files point where compose.yaml mounts them. Grafana itself cannot
    /// run here (Debian does not package it and no registry is reachable), so this is its loader's
    /// contract checked piece by piece; the metrics the queries use are checked against running roles
    /// in the system tests ("Alert rules: every metric exists").
    @Suite("Grafana dashboard")
    struct GrafanaDashboardTests {
        static let directory = ComposeFile.directory.appendingPathComponent("grafana")

        static func dashboard() throws -> [String: Any] {
            let data = try Data(contentsOf: directory.appendingPathComponent("dashboards/leasehold.json"))
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }

        /// Every panel that is not a row.
        static func panels() throws -> [[String: Any]] {
            try #require(try dashboard()["panels"] as? [[String: Any]]).filter { ($0["type"] as? String) != "row" }
        }

        /// Every query of every panel, as `(panel title, expression)`.
        static func queries() throws -> [(panel: String, expression: String)] {
            try panels().flatMap { panel in
                let title = panel["title"] as? String ?? "?"
                return try #require(panel["targets"] as? [[String: Any]], "\(title) has no targets").map {
                    (title, try #require($0["expr"] as? String, "\(title) has a target without expr"))
                }
            }
        }

        @Test("the dashboard has the fields Grafana's dashboard model requires")
        func model() throws {
            let dashboard = try Self.dashboard()
            #expect(dashboard["uid"] as? String == "leasehold")
            #expect((dashboard["title"] as? String)?.isEmpty == false)
            let schemaVersion = try #require(dashboard["schemaVersion"] as? Int)
            #expect((36...41).contains(schemaVersion), "schemaVersion \(schemaVersion)")
            #expect(dashboard["editable"] is Bool)
            #expect([0, 1, 2].contains(dashboard["graphTooltip"] as? Int ?? -1))
            #expect((dashboard["time"] as? [String: Any])?["from"] is String)
            #expect(dashboard["id"] == nil, "a provisioned dashboard has no database id")
            let all = try #require(dashboard["panels"] as? [[String: Any]])
            let ids = all.compactMap { $0["id"] as? Int }
            #expect(ids.count == all.count && Set(ids).count == ids.count, "every panel needs its own id")
        }

        @Test("the panels tile Grafana's 24-column grid without overlapping")
        func grid() throws {
            var occupied: [(title: String, x: Int, y: Int, w: Int, h: Int)] = []
            for panel in try #require(try Self.dashboard()["panels"] as? [[String: Any]]) {
                let title = panel["title"] as? String ?? "?"
                let grid = try #require(panel["gridPos"] as? [String: Int], "\(title) has no gridPos")
                let (x, y, w, h) = (grid["x"] ?? -1, grid["y"] ?? -1, grid["w"] ?? 0, grid["h"] ?? 0)
                #expect(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24, "\(title): \(grid)")
                for other in occupied
                where x < other.x + other.w && other.x < x + w && y < other.y + other.h
                    && other.y < y + h
                {
                    Issue.record("\(title) overlaps \(other.title)")
                }
                occupied.append((title, x, y, w, h))
            }
        }

        @Test("the panels the on-call person needs are there, each queried from the provisioned Prometheus")
        func panelsAndDataSource() throws {
            let panels = try Self.panels()
            let titles = panels.compactMap { $0["title"] as? String }
            for needed in [
                "per second", "End-to-end latency", "Backlog", "Oldest pending", "Refused", "Dead letters",
                "Bot API", "CPU", "memory",
            ] {
                #expect(titles.contains { $0.contains(needed) }, "no panel about \(needed)")
            }
            let provisioned = try String(
                contentsOf: Self.directory.appendingPathComponent("provisioning/datasources/prometheus.yml"),
                encoding: .utf8)
            let sources = try #require(
                (try Yams.load(yaml: provisioned) as? [String: Any])?["datasources"] as? [[String: Any]])
            let uid = try #require(sources.first?["uid"] as? String)
            #expect(sources.first?["url"] as? String == "http://prometheus:9090")
            for panel in panels {
                let title = panel["title"] as? String ?? "?"
                #expect((panel["datasource"] as? [String: Any])?["uid"] as? String == uid, "\(title)'s data source")
                #expect((panel["description"] as? String)?.isEmpty == false, "\(title) says what it shows")
                let targets = panel["targets"] as? [[String: Any]] ?? []
                let references = targets.compactMap { $0["refId"] as? String }
                #expect(!targets.isEmpty && Set(references).count == targets.count, "\(title): refIds \(references)")
            }
        }

        @Test("every query is valid PromQL (promtool parses each)", .enabled(if: AlertRulesTests.promtoolAvailable))
        func queriesParse() throws {
            let queries = try Self.queries()
            #expect(queries.count >= 15)
            var rules = "groups:\n  - name: dashboard\n    rules:\n"
            for (index, query) in queries.enumerated() {
                let quoted = query.expression.replacingOccurrences(of: "'", with: "''")
                rules += "      - record: dashboard_query_\(index)\n        expr: '\(quoted)'\n"
            }
            let file = FileManager.default.temporaryDirectory.appendingPathComponent(
                "leasehold-dashboard-\(getpid()).yml")
            try rules.write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let process = Process()
            process.executableURL = AlertRulesTests.promtool
            process.arguments = ["check", "rules", file.path]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "promtool check rules on the dashboard's queries:\n\(output)")
        }

        @Test("compose.yaml mounts the provisioning and the dashboards where the provisioning reads them")
        func provisioningPaths() throws {
            let compose = try ComposeFile.load(variables: try ComposeFile.exampleVariables())
            let grafana = try #require(compose.services["grafana"])
            #expect(grafana.profiles == ["monitoring"])
            #expect(grafana.volumes.contains("./grafana/provisioning:/etc/grafana/provisioning:ro"))
            #expect(grafana.volumes.contains("./grafana/dashboards:/etc/grafana/dashboards:ro"))
            let provider = try String(
                contentsOf: Self.directory.appendingPathComponent("provisioning/dashboards/leasehold.yml"),
                encoding: .utf8)
            let providers = try #require(
                (try Yams.load(yaml: provider) as? [String: Any])?["providers"] as? [[String: Any]])
            #expect((providers.first?["options"] as? [String: Any])?["path"] as? String == "/etc/grafana/dashboards")
            let home = try #require(grafana.environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
            #expect(home == "/etc/grafana/dashboards/leasehold.json")
            #expect(
                FileManager.default.fileExists(
                    atPath: Self.directory.appendingPathComponent("dashboards/leasehold.json").path))
        }
    }
}
