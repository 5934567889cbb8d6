import Foundation
import Testing

@testable import leasehold

extension UnitTests {
    /// The defaults README.md, Runbooks/configuration.md and the Compose files quote are the ones the
    /// settings define (so the ones `--help` shows and the code uses).
    @Suite("Documented defaults match the settings")
    struct DocumentedDefaultsTests {
        static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()

        static func file(_ path: String) throws -> String {
            try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
        }

        /// Each variable's default as the help shows it (`default 16` → `16`), for the settings whose
        /// help shows the value itself (not "one per CPU core", not a per-process name).
        static let defaults: [String: Set<String>] = {
            var defaults: [String: Set<String>] = [:]
            for setting in Settings.all {
                let value: String? =
                    switch setting {
                    case let setting as IntSetting: String(setting.defaultValue)
                    case let setting as DurationSetting: String(setting.count.defaultValue)
                    case let setting as BoolSetting: String(setting.defaultValue)
                    case let setting as StringSetting: setting.fixedDefault
                    default: nil
                    }
                guard let value, setting.defaultNote == "default \(value)" else { continue }
                defaults[setting.variable, default: []].insert(value)
            }
            return defaults
        }()

        /// The backquoted words of a Markdown table cell.
        static func quoted(_ cell: Substring) -> [String] {
            cell.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }
                .map { String($0.element) }
        }

        /// (variable, documented default) from a settings table: `| \`A\` / \`B\` | flags | \`1\` / \`2\` | …`.
        /// `…_SUFFIX` stands for the first variable's longest prefix that makes a known variable.
        static func tableDefaults(_ markdown: String) -> [(variable: String, value: String)] {
            var pairs: [(String, String)] = []
            for line in markdown.split(separator: "\n") where line.hasPrefix("| `") {
                let cells = line.split(separator: "|", omittingEmptySubsequences: false).map {
                    $0.trimmingCharacters(in: .whitespaces)[...]
                }
                guard cells.count > 4 else { continue }
                let names = cells[1].split(separator: " / ").map { quoted($0).first ?? "" }
                let values = cells[3].split(separator: " / ").map { quoted($0).first }
                guard names.count == values.count, let first = names.first else { continue }
                for (name, value) in zip(names, values) {
                    guard let value else { continue }
                    var variable = name
                    if name.hasPrefix("…") {
                        let suffix = name.dropFirst()
                        let parts = first.split(separator: "_")
                        variable =
                            (1..<parts.count).reversed().map { parts[0..<$0].joined(separator: "_") + suffix }
                            .first { defaults[$0] != nil } ?? name
                    }
                    if defaults[variable] != nil { pairs.append((variable, value)) }
                }
            }
            return pairs
        }

        @Test(
            "the settings tables of README.md and Runbooks/configuration.md",
            arguments: [
                "README.md", "Runbooks/configuration.md",
            ])
        func markdownTables(path: String) throws {
            let pairs = Self.tableDefaults(try Self.file(path))
            #expect(pairs.count >= (path == "README.md" ? 12 : 40), "\(path): \(pairs.count) defaults found")
            for (variable, value) in pairs {
                #expect(Self.defaults[variable] == [value], "\(path): \(variable) documented as \(value)")
            }
        }

        @Test("Compose/.env.example's tuning block and compose.yaml's ${NAME:-default}")
        func composeFiles() throws {
            let example = try Self.file("Compose/.env.example")
            let tuning = try #require(example.range(of: "# Optional tuning (defaults shown)."))
            var checked = 0
            for line in example[tuning.upperBound...].split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, let expected = Self.defaults[parts[0]] else { continue }
                #expect(expected == [parts[1]], ".env.example: \(line)")
                checked += 1
            }
            let compose = try Self.file("Compose/compose.yaml")
            let pattern = try Regex(#"(\w+): \$\{(\w+):-([^}]+)\}"#)
            for match in compose.matches(of: pattern) {
                guard let key = match.output[1].substring, match.output[2].substring == key,
                    let value = match.output[3].substring, let expected = Self.defaults[String(key)]
                else { continue }
                #expect(expected == [String(value)], "compose.yaml: \(key) defaults to \(value)")
                checked += 1
            }
            #expect(checked >= 6, "\(checked) defaults found in the Compose files")
        }
    }
}
