import ArgumentParser
import Foundation
import LeaseholdPostgres
import LeaseholdRuntime

/// `leasehold migrate`: applies pending migrations.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending schema migrations (safe to run twice, or from several replicas at once).",
        discussion: """
            Applies Migrations/NNNN_name.sql files in version order, each in its own transaction, under a \
            PostgreSQL advisory lock, and records them in schema_migrations. Refuses to run when an \
            applied file has changed since (checksum mismatch). Exit status: 0 on success, 1 on any error.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Directory of NNNN_name.sql files (env: LEASEHOLD_MIGRATIONS_DIR; default ./Migrations).")
    var migrations: String?

    @Flag(help: "List applied and pending migrations; change nothing.")
    var status = false

    func run() async throws {
        let logger = try common.bootstrapLogging(label: "leasehold.migrate")
        let directory = migrations.map { URL(fileURLWithPath: $0) } ?? Migration.defaultDirectory()
        let files = try Migration.load(from: directory)
        let client = PostgresClient(configuration: common.postgresConfiguration, size: 1)
        let migrator = Migrator(client: client, logger: logger)
        do {
            if status {
                let applied = try await migrator.applied()
                for migration in files {
                    let row = applied.first { $0.version == migration.version }
                    let state = row.map { "applied \($0.appliedAt.formatted(.iso8601))" } ?? "pending"
                    print("\(migration.fileName)\t\(state)")
                }
            } else {
                let report = try await migrator.migrate(files)
                // With several hosts in POSTGRES_URL, the one that took the migrations.
                let server = try await client.withConnection { $0.server }
                print(
                    "migrations: \(report.applied.count) applied, \(report.alreadyApplied) already applied (on \(server))"
                )
                for file in report.applied { print("  applied \(file)") }
            }
        } catch {
            await client.close()
            throw error
        }
        await client.close()
    }
}
