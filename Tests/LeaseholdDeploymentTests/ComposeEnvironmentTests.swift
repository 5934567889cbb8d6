import Foundation
import LeaseholdTesting
import Testing

extension UnitTests {
    /// Every environment variable compose.yaml (or the image) sets for a Leasehold service is one that
    /// service's role reads, as `leasehold <role> --help` documents it. A misspelt or stale variable
    /// would otherwise be silently ignored and the role would run on its default.
    ///
    /// Adding a role (the notifier) or a variable (the payment allowlist) needs no change here: the
    /// role comes from the service's `command`, the list from that role's `--help`.
    @Suite("Compose: every variable set is one the binary reads")
    struct ComposeEnvironmentTests {
        /// For each Leasehold service, the variables it sets that its role does not read.
        static func unknownVariables(in compose: ComposeFile) async throws -> [String: [String]] {
            var unknown: [String: [String]] = [:]
            var cache: [[String]: Set<String>] = [:]
            for service in compose.leaseholdServices {
                let read: Set<String>
                if let cached = cache[service.role] {
                    read = cached
                } else {
                    read = try await RoleHelp.environmentVariables(role: service.role)
                    cache[service.role] = read
                }
                let extra = Set(service.environment.keys).subtracting(read)
                if !extra.isEmpty { unknown[service.name] = extra.sorted() }
            }
            return unknown
        }

        @Test("compose.yaml sets no variable a role does not read")
        func composeVariablesAreRead() async throws {
            let compose = try ComposeFile.load(variables: try ComposeFile.exampleVariables())
            let names = compose.leaseholdServices.map(\.name)
            #expect(Set(names).isSuperset(of: ["migrate", "ingress", "worker", "supervisor"]), "found \(names)")
            let unknown = try await Self.unknownVariables(in: compose)
            #expect(
                unknown.isEmpty, "set in compose.yaml but not read (no `env: NAME` in the role's --help): \(unknown)")
        }

        @Test("compose.yaml with its override files sets no variable a role does not read")
        func overrideVariablesAreRead() async throws {
            let variables = try ComposeFile.exampleVariables()
            let services = try ComposeFile.load(variables: variables).leaseholdServices.map(\.name)
            for overrides in [
                ["postgres-standby.yaml"], ["redis-cluster.yaml"], ["postgres-standby.yaml", "redis-cluster.yaml"],
            ] {
                let compose = try ComposeFile.load(overrides: overrides, variables: variables)
                #expect(compose.leaseholdServices.map(\.name) == services, "\(overrides)")
                let unknown = try await Self.unknownVariables(in: compose)
                #expect(unknown.isEmpty, "set with \(overrides) but not read: \(unknown)")
            }
        }

        @Test("the check flags a variable no role reads")
        func checkCatchesUnknownVariable() async throws {
            let text = try String(contentsOf: ComposeFile.url, encoding: .utf8)
            let marker = "      LEASEHOLD_WORKER_CONCURRENCY:"
            #expect(text.contains(marker))
            let broken = text.replacingOccurrences(
                of: marker, with: "      LEASEHOLD_WORKER_CONCURENCY: \"8\"\n" + marker)
            let compose = try ComposeFile.load(text: broken, variables: try ComposeFile.exampleVariables())
            let unknown = try await Self.unknownVariables(in: compose)
            #expect(unknown == ["worker": ["LEASEHOLD_WORKER_CONCURENCY"]])
        }

        @Test("the image's ENV variables are read by a role compose runs")
        func dockerfileVariablesAreRead() async throws {
            let compose = try ComposeFile.load(variables: try ComposeFile.exampleVariables())
            var read: Set<String> = []
            for role in Set(compose.leaseholdServices.map(\.role)) {
                read.formUnion(try await RoleHelp.environmentVariables(role: role))
            }
            let set = try Dockerfile.load().environment
            #expect(!set.isEmpty)
            #expect(
                Set(set.keys).subtracting(read).isEmpty, "Dockerfile ENV not read by any role: \(set.keys.sorted())")
        }

        @Test("help parsing finds wrapped and listed names")
        func helpParsing() {
            let help = """
                  --port <port>   Listen port (env: LEASEHOLD_INGRESS_PORT; default 8080).
                  --x             Something long enough to wrap (env:
                                  LEASEHOLD_WRAPPED_NAME; default 1). Also (env: A_ONE, B_TWO) and (env: C / D).
                """
            #expect(
                RoleHelp.names(in: help) == [
                    "LEASEHOLD_INGRESS_PORT", "LEASEHOLD_WRAPPED_NAME", "A_ONE", "B_TWO", "C", "D",
                ])
        }
    }
}
