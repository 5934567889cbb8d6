import Foundation
import LeaseholdPostgres
import LeaseholdRuntime
import LeaseholdTesting
import Testing

@Suite("leasehold migrate against a real PostgreSQL", .enabled(if: IntegrationEnvironment.isAvailable))
struct MigratorTests {
    private func appliedVersions(_ client: PostgresClient) async throws -> [Int64] {
        try await client.query("SELECT version FROM schema_migrations ORDER BY version").map {
            try $0.decode(Int64.self, at: 0)
        }
    }

    private func tableExists(_ client: PostgresClient, _ name: String) async throws -> Bool {
        try await client.query("SELECT to_regclass(\(name)) IS NOT NULL").single().decode(Bool.self, at: 0)
    }

    @Test func appliesTheProjectsMigrationsOnceAndIsSafeToRunTwice() async throws {
        let database = try await TemporaryDatabase.create()
        let client = database.client()
        let migrations = try Migration.load(from: LeaseholdExecutable.migrationsDirectory)
        let migrator = Migrator(client: client)

        let first = try await migrator.migrate(migrations)
        #expect(first.applied == migrations.map(\.fileName))
        #expect(try await tableExists(client, "interviews"))
        #expect(try await tableExists(client, "inbox"))

        let second = try await migrator.migrate(migrations)
        #expect(second.applied.isEmpty)
        #expect(second.alreadyApplied == migrations.count)
        #expect(try await appliedVersions(client) == migrations.map(\.version))
        await client.close()
        try await database.drop()
    }

    @Test func fourConcurrentProcessesApplyEachMigrationExactlyOnce() async throws {
        let database = try await TemporaryDatabase.create()
        let workspace = try makeTemporaryDirectory()
        let processes = try (0..<4).map { index in
            try LeaseholdExecutable.start(
                [
                    "migrate", "--postgres-url", database.url, "--migrations",
                    LeaseholdExecutable.migrationsDirectory.path,
                ],
                name: "migrate-\(index)", in: workspace)
        }
        for process in processes {
            #expect(await process.waitForExit(timeout: .seconds(120)))
            #expect(process.exitStatus == 0, "\(process.name) failed:\n\(process.output)")
        }
        let outputs = processes.map(\.output)
        let appliedBy = outputs.filter { $0.contains("applied 0001_booking.sql") }
        #expect(
            appliedBy.count == 1, "exactly one process applies 0001; outputs:\n\(outputs.joined(separator: "\n---\n"))")

        let client = database.client()
        let migrations = try Migration.load(from: LeaseholdExecutable.migrationsDirectory)
        #expect(try await appliedVersions(client) == migrations.map(\.version))
        await client.close()
        try await database.drop()
    }

    @Test func refusesAChangedAppliedFileAndChangesNothing() async throws {
        let database = try await TemporaryDatabase.create()
        let directory = try makeTemporaryDirectory("migrations")
        try "CREATE TABLE a (id int);".write(
            to: directory.appendingPathComponent("0001_a.sql"), atomically: true, encoding: .utf8)
        let client = database.client()
        let migrator = Migrator(client: client)
        _ = try await migrator.migrate(try Migration.load(from: directory))

        try "CREATE TABLE a (id bigint);".write(
            to: directory.appendingPathComponent("0001_a.sql"), atomically: true, encoding: .utf8)
        try "CREATE TABLE b (id int);".write(
            to: directory.appendingPathComponent("0002_b.sql"), atomically: true, encoding: .utf8)
        await #expect {
            try await migrator.migrate(try Migration.load(from: directory))
        } throws: { error in
            guard case .checksumMismatch(1, "0001_a.sql", _, _) = error as? MigrationError else { return false }
            return true
        }
        #expect(try await !tableExists(client, "b"), "nothing after the changed file may be applied")

        // The CLI says so in one line and exits non-zero.
        let workspace = try makeTemporaryDirectory()
        let result = try await LeaseholdExecutable.run(
            ["migrate", "--postgres-url", database.url, "--migrations", directory.path], in: workspace)
        #expect(result.status != 0)
        #expect(result.output.contains("was changed after it was applied"))
        await client.close()
        try await database.drop()
    }

    @Test func aFailingMigrationIsRolledBackAndStopsTheRun() async throws {
        let database = try await TemporaryDatabase.create()
        let directory = try makeTemporaryDirectory("migrations")
        try "CREATE TABLE ok (id int);".write(
            to: directory.appendingPathComponent("0001_ok.sql"), atomically: true, encoding: .utf8)
        try "CREATE TABLE half (id int);\nSELECT no_such_function();".write(
            to: directory.appendingPathComponent("0002_broken.sql"), atomically: true, encoding: .utf8)
        try "CREATE TABLE after (id int);".write(
            to: directory.appendingPathComponent("0003_after.sql"), atomically: true, encoding: .utf8)
        let client = database.client()
        await #expect {
            try await Migrator(client: client).migrate(try Migration.load(from: directory))
        } throws: { error in
            guard case .failed(let file, let reason) = error as? MigrationError else { return false }
            return file == "0002_broken.sql" && reason.contains("42883")
        }
        #expect(try await appliedVersions(client) == [1])
        #expect(try await tableExists(client, "ok"))
        #expect(try await !tableExists(client, "half"), "the failed migration's own statements are rolled back")
        #expect(try await !tableExists(client, "after"))
        await client.close()
        try await database.drop()
    }
}
