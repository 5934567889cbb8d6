import Foundation
import LeaseholdTesting
import Testing

extension UnitTests {
    /// README.md's "Compose" section describes compose.yaml as it is: one table row per service with
    /// its replica count and exactly the variables it sets, the scaling command, every `.env`
    /// variable, and the grace period and drain timeout the file uses.
    @Suite("Compose: the README's section matches the file")
    struct ComposeReadmeTests {
        let compose: ComposeFile
        let section: String

        init() throws {
            compose = try ComposeFile.load(variables: try ComposeFile.exampleVariables())
            let readme = try String(
                contentsOf: LeaseholdExecutable.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
            guard let start = readme.range(of: "\n## Compose\n") else {
                throw TestSetupError("README.md has no ## Compose")
            }
            let rest = readme[start.upperBound...]
            section = String(rest[..<(rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex)])
        }

        /// The table's rows by service: the cells after the service name.
        var rows: [String: [String]] {
            var rows: [String: [String]] = [:]
            for line in section.split(separator: "\n") where line.hasPrefix("| `") {
                let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
                guard let name = cells.first?.trimmingCharacters(in: CharacterSet(charactersIn: "`")) else { continue }
                rows[name] = Array(cells.dropFirst())
            }
            return rows
        }

        /// Backticked names that look like environment variables.
        static func variableNames(in text: String) -> Set<String> {
            Set(
                text.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }
                    .map { String($0.element) }
                    .filter { $0.range(of: #"^[A-Z][A-Z0-9_]*$"#, options: .regularExpression) != nil })
        }

        @Test("one row per service, no row for a service that does not exist")
        func everyService() {
            #expect(Set(rows.keys) == Set(compose.services.keys))
        }

        @Test("each row lists exactly the variables the service sets, and its replicas")
        func rowsMatch() throws {
            for (name, service) in compose.services {
                let cells = try #require(rows[name], "no README row for \(name)")
                try #require(cells.count == 3, "\(name): expected | service | runs | replicas | environment |")
                #expect(cells[1] == String(service.replicas), "\(name): README says \(cells[1]) replicas")
                let documented = Self.variableNames(in: cells[2])
                let set = Set(service.environment.keys)
                #expect(documented == set, "\(name): README lists \(documented.sorted()), compose sets \(set.sorted())")
                if compose.leaseholdServices.contains(where: { $0.name == name }) {
                    #expect(
                        cells[0].contains("`leasehold \(service.role.joined(separator: " "))"), "\(name): \(cells[0])")
                } else {
                    #expect(cells[0].contains("`\(service.image ?? "?")`"), "\(name): \(cells[0])")
                }
            }
        }

        @Test("the scaling command, every .env variable, the grace period and the drain timeout")
        func prose() throws {
            #expect(section.contains("docker compose up -d --scale worker=8"))
            for variable in try ComposeFile.exampleVariables().keys {
                #expect(section.contains("`\(variable)`"), "\(variable) from .env.example is not described")
            }
            let worker = try #require(compose["worker"])
            let grace = try #require(worker.stopGracePeriod).components.seconds
            let drain = (Int(worker.environment["LEASEHOLD_DRAIN_TIMEOUT_MS"] ?? "") ?? 0) / 1000
            #expect(section.contains("`stop_grace_period` is \(grace) s"))
            #expect(
                section.contains("\(drain) s\n  `LEASEHOLD_DRAIN_TIMEOUT_MS`")
                    || section.contains("\(drain) s `LEASEHOLD_DRAIN_TIMEOUT_MS`"))
        }
    }
}
