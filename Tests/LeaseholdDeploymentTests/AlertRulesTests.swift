import Foundation
import LeaseholdTesting
import Testing
import Yams

extension UnitTests {
    /// Compose/prometheus/alerts.yml: the rules pass their promtool unit tests, Prometheus accepts
    /// the configuration that loads them, and every alert's runbook link leads to a section that names
    /// the alert back.
    @Suite("Alert rules")
    struct AlertRulesTests {
        static let directory = ComposeFile.directory.appendingPathComponent("prometheus")
        static let promtool = URL(fileURLWithPath: "/usr/bin/promtool")
        /// Always under `REQUIRE_INTEGRATION=1` (CI installs Debian's `prometheus`, which carries
        /// promtool; a missing one then fails), otherwise when promtool is installed.
        static let promtoolAvailable =
            IntegrationEnvironment.isRequired || FileManager.default.isExecutableFile(atPath: promtool.path)

        /// Each alert's name and its `runbook` annotation, as alerts.yml lists them.
        static func alerts() throws -> [(name: String, runbook: String)] {
            let text = try String(contentsOf: directory.appendingPathComponent("alerts.yml"), encoding: .utf8)
            let root = try #require(try Yams.load(yaml: text) as? [String: Any])
            let groups = try #require(root["groups"] as? [[String: Any]])
            return try groups.flatMap { group in
                try #require(group["rules"] as? [[String: Any]]).map { rule in
                    let name = try #require(rule["alert"] as? String)
                    let annotations = try #require(rule["annotations"] as? [String: Any], "\(name) has no annotations")
                    return (name, try #require(annotations["runbook"] as? String, "\(name) names no runbook"))
                }
            }
        }

        @Test(
            "promtool: the rules' unit tests pass and the Prometheus configuration loads them",
            .enabled(if: promtoolAvailable))
        func promtoolTests() throws {
            let tests = try run(Self.promtool, ["test", "rules", "alerts-test.yml"])
            #expect(tests.status == 0, "promtool test rules:\n\(tests.output)")
            #expect(tests.output.contains("SUCCESS"))
            let config = try run(Self.promtool, ["check", "config", "prometheus.yml"])
            #expect(config.status == 0, "promtool check config:\n\(config.output)")
            #expect(config.output.contains("SUCCESS: \(try Self.alerts().count) rules found"), "\(config.output)")
        }

        @Test("every alert is tested by alerts-test.yml")
        func everyAlertIsTested() throws {
            let tests = try String(
                contentsOf: Self.directory.appendingPathComponent("alerts-test.yml"), encoding: .utf8)
            for alert in try Self.alerts() {
                #expect(tests.contains("alertname: \(alert.name)\n"), "\(alert.name) has no promtool test")
            }
        }

        @Test("every alert's runbook section exists and names the alert")
        func runbookSectionsNameTheirAlerts() throws {
            let alerts = try Self.alerts()
            #expect(alerts.count >= 10)
            for alert in alerts {
                let parts = alert.runbook.split(separator: "#", maxSplits: 1).map(String.init)
                try #require(parts.count == 2 && parts[0].hasPrefix("Runbooks/"), "\(alert.name): \(alert.runbook)")
                let file = LeaseholdExecutable.packageRoot.appendingPathComponent(parts[0])
                let text = try String(contentsOf: file, encoding: .utf8)
                let section = try #require(
                    Self.section(of: text, anchor: parts[1]), "\(alert.name): \(parts[0]) has no section #\(parts[1])")
                #expect(section.contains("`\(alert.name)`"), "\(parts[0])#\(parts[1]) does not name \(alert.name)")
            }
        }

        @Test("GitHub's heading anchors, as the runbook links use them")
        func anchors() {
            #expect(Self.anchor("## Token rejected (401 / 404)") == "token-rejected-401--404")
            #expect(Self.anchor("## 2. What state are the replies in?") == "2-what-state-are-the-replies-in")
            #expect(
                Self.anchor("## Symptom: entries stay pending (`leasehold status`: PENDING and OLDEST-PENDING grow)")
                    == "symptom-entries-stay-pending-leasehold-status-pending-and-oldest-pending-grow")
        }

        /// The text under the heading whose anchor is `anchor`, up to the next heading of any level.
        static func section(of markdown: String, anchor: String) -> String? {
            let lines = markdown.split(separator: "\n", omittingEmptySubsequences: false)
            guard let start = lines.firstIndex(where: { $0.hasPrefix("#") && Self.anchor(String($0)) == anchor }) else {
                return nil
            }
            let rest = lines[(start + 1)...]
            let end = rest.firstIndex(where: { $0.hasPrefix("## ") || $0.hasPrefix("# ") }) ?? lines.endIndex
            return lines[start..<end].joined(separator: "\n")
        }

        /// A Markdown heading's anchor as GitHub makes it: lower case, punctuation other than `-` and
        /// `_` removed, each space a `-`.
        static func anchor(_ heading: String) -> String {
            let title = heading.drop(while: { $0 == "#" }).drop(while: { $0 == " " })
            return String(
                title.lowercased().compactMap { character -> Character? in
                    if character == " " { return "-" }
                    if character == "-" || character == "_" || character.isLetter || character.isNumber {
                        return character
                    }
                    return nil
                })
        }

        /// Runs `executable` in the rules' directory; its exit status and its output and errors together.
        private func run(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, output: String) {
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments
            process.currentDirectoryURL = Self.directory
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
    }
}
