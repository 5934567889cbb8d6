import Foundation
import LeaseholdRuntime
import LeaseholdTesting
import Testing

extension UnitTests {
    @Suite("Loading migration files")
    struct MigrationLoadingTests {
        private func directory(_ files: [String: String]) throws -> URL {
            let url = try makeTemporaryDirectory("migrations")
            for (name, text) in files {
                try text.write(to: url.appendingPathComponent(name), atomically: true, encoding: .utf8)
            }
            return url
        }

        @Test func loadsInVersionOrderAndIgnoresOtherFiles() throws {
            let url = try directory([
                "0010_later.sql": "SELECT 10;", "0002_second.sql": "SELECT 2;", "0001_first.sql": "SELECT 1;",
                "README.md": "not a migration",
            ])
            let migrations = try Migration.load(from: url)
            #expect(migrations.map(\.version) == [1, 2, 10])
            #expect(migrations.map(\.fileName) == ["0001_first.sql", "0002_second.sql", "0010_later.sql"])
            #expect(migrations[0].sql == "SELECT 1;")
        }

        @Test(arguments: ["first.sql", "0001.sql", "x001_first.sql", "0000_zero.sql", "0001_.sql"])
        func refusesBadFileNames(_ name: String) throws {
            let url = try directory([name: "SELECT 1;"])
            #expect(throws: MigrationError.badFileName(name)) { try Migration.load(from: url) }
        }

        @Test func refusesDuplicateVersions() throws {
            let url = try directory(["0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"])
            #expect {
                try Migration.load(from: url)
            } throws: { error in
                guard case .duplicateVersion(1, _, _) = error as? MigrationError else { return false }
                return true
            }
        }

        @Test func refusesEmptyFilesAndEmptyDirectories() throws {
            #expect(throws: MigrationError.emptyFile("0001_a.sql")) {
                try Migration.load(from: try directory(["0001_a.sql": "  \n"]))
            }
            let empty = try directory([:])
            #expect(throws: MigrationError.noMigrations(path: empty.path)) { try Migration.load(from: empty) }
        }

        @Test func theProjectsMigrationsLoad() throws {
            let migrations = try Migration.load(from: LeaseholdExecutable.migrationsDirectory)
            #expect(migrations.first?.fileName == "0001_booking.sql")
            #expect(Set(migrations.map(\.version)).count == migrations.count)
        }
    }
}
