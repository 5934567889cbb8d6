import Foundation
import LeaseholdTesting
import Testing

extension UnitTests {
    /// Compose/postgres-standby.yaml, the override that adds a synchronous PostgreSQL standby, kept in
    /// step with compose.yaml: every service that reaches PostgreSQL gets both nodes with
    /// `target_session_attrs=read-write` (a role left with the single-node URL would not follow a
    /// failover), the primary keeps compose.yaml's settings, and the files it mounts exist.
    @Suite("Compose: the PostgreSQL standby override")
    struct PostgresStandbyOverrideTests {
        static let url = ComposeFile.directory.appendingPathComponent("postgres-standby.yaml")
        let base: ComposeFile
        let override: ComposeFile

        init() throws {
            let variables = try ComposeFile.exampleVariables()
            base = try ComposeFile.load(variables: variables)
            override = try ComposeFile.load(
                text: try String(contentsOf: Self.url, encoding: .utf8), variables: variables)
        }

        @Test("every service with POSTGRES_URL in compose.yaml gets both nodes, read-write only")
        func everyPostgresServiceFollowsAFailover() throws {
            let services = base.services.values.filter { $0.environment["POSTGRES_URL"] != nil }.map(\.name).sorted()
            #expect(services.count >= 4, "\(services)")
            for name in services {
                let single = try #require(base[name]?.environment["POSTGRES_URL"])
                let url = try #require(override[name]?.environment["POSTGRES_URL"], "\(name) keeps the single-node URL")
                #expect(url.contains("@postgres:5432,postgres-standby:5432/"), "\(name): \(url)")
                #expect(url.hasSuffix("?target_session_attrs=read-write"), "\(name): \(url)")
                let withoutStandby = url.replacingOccurrences(of: ",postgres-standby:5432", with: "")
                #expect(withoutStandby.hasPrefix(single), "\(name): same user, password and database as compose.yaml")
            }
        }

        @Test("the primary keeps compose.yaml's settings; the standby runs the same image")
        func primaryAndStandbyMatch() throws {
            let primary = try #require(base["postgres"])
            let overridden = try #require(override["postgres"])
            let standby = try #require(override["postgres-standby"])
            for argument in primary.command where argument.contains("=") {
                #expect(overridden.command.contains(argument), "the override drops \(argument)")
            }
            #expect(overridden.command.contains("hba_file=/etc/postgresql/pg_hba.conf"))
            #expect(standby.image == primary.image)
            #expect(standby.command.joined().contains("pg_basebackup"))
        }

        @Test("every file the override mounts exists")
        func mountedFilesExist() {
            #expect(override.missingMounts.isEmpty, "\(override.missingMounts)")
        }
    }
}
