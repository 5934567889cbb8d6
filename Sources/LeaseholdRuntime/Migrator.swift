import Foundation
import LeaseholdCore
import LeaseholdPostgres
import Logging

/// Applies pending migrations, in order, exactly once, however many processes run it at once.
///
/// - Everything happens on one connection holding a session-level `pg_advisory_lock`, so
///   concurrent `leasehold migrate` runs (four replicas starting together) queue up: the first
///   applies, the others then find nothing to do.
/// - Each migration runs in its own transaction together with its `schema_migrations` row, so a
///   failed migration leaves no trace and a crash mid-way leaves the database at the previous
///   version.
/// - The checksum (SHA-256, computed by PostgreSQL itself) of every applied file is compared with
///   the file on disk; a changed file stops the run before anything is applied.
public struct Migrator: Sendable {
    /// The advisory lock key: `hashtext('leasehold.migrate')` would do, a constant is clearer.
    public static let advisoryLockKey: Int64 = 0x4C45_4153_4548_4F4C  // "LEASEHOL"

    /// What a run did.
    public struct Report: Sendable, Equatable {
        /// Migrations this run applied, in order.
        public var applied: [String]
        /// Migrations that were already applied.
        public var alreadyApplied: Int
        /// Versions recorded in the database with no file here (the database is newer than this binary).
        public var unknownApplied: [Int64]
    }

    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger = Logger(label: "leasehold.migrate")) {
        self.client = client
        self.logger = logger
    }

    /// Applies every migration in `migrations` that is not applied yet.
    public func migrate(_ migrations: [Migration]) async throws -> Report {
        let logger = self.logger
        return try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(Self.advisoryLockKey))")
            let report: Result<Report, any Error>
            do {
                report = .success(try await Self.apply(migrations, on: connection, logger: logger))
            } catch {
                report = .failure(error)
            }
            _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))")
            return try report.get()
        }
    }

    /// The versions applied so far, with their names, checksums and times.
    public func applied() async throws -> [(version: Int64, name: String, checksum: String, appliedAt: Date)] {
        let rows = try await client.withConnection { connection in
            try await Self.ensureTable(connection)
            return try await connection.query(
                "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version")
        }
        return try rows.map { row in
            let (version, name, checksum, appliedAt) = try row.decode(Int64.self, String.self, String.self, Date.self)
            return (version, name, checksum, appliedAt)
        }
    }

    private static func reason(_ error: PostgresTransactionError) -> String {
        error.postgresError?.description ?? error.description
    }

    private static func ensureTable(_ connection: PostgresConnection) async throws {
        try await connection.simpleQuery(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version      bigint PRIMARY KEY,
                name         text NOT NULL,
                checksum     text NOT NULL,
                applied_at   timestamptz NOT NULL DEFAULT now(),
                execution_ms integer NOT NULL
            )
            """)
    }

    private static func apply(_ migrations: [Migration], on connection: PostgresConnection, logger: Logger)
        async throws
        -> Report
    {
        try await ensureTable(connection)
        var recorded: [Int64: String] = [:]
        for row in try await connection.query("SELECT version, checksum FROM schema_migrations") {
            let (version, checksum) = try row.decode(Int64.self, String.self)
            recorded[version] = checksum
        }

        // Verify every applied file before applying anything.
        var checksums: [Int64: String] = [:]
        for migration in migrations {
            let checksum = try await connection.query(
                "SELECT encode(sha256(\(Array(migration.sql.utf8))), 'hex')"
            ).single().decode(String.self, at: 0)
            checksums[migration.version] = checksum
            if let applied = recorded[migration.version], applied != checksum {
                throw MigrationError.checksumMismatch(
                    version: migration.version, file: migration.fileName, applied: applied, now: checksum)
            }
        }

        var report = Report(
            applied: [], alreadyApplied: migrations.filter { recorded[$0.version] != nil }.count,
            unknownApplied: recorded.keys.filter { version in !migrations.contains { $0.version == version } }.sorted())
        if !report.unknownApplied.isEmpty {
            logger.warning(
                "database has migrations this binary does not know; it is newer than this build",
                metadata: ["versions": "\(report.unknownApplied)"])
        }

        for migration in migrations where recorded[migration.version] == nil {
            let started = ContinuousClock.now
            logger.info("applying migration", metadata: ["file": "\(migration.fileName)"])
            do {
                try await connection.withTransaction(.init(lockTimeout: .seconds(60), statementTimeout: nil)) { tx in
                    try await tx.simpleQuery(migration.sql)
                    let elapsed = started.duration(to: .now)
                    try await tx.query(
                        """
                        INSERT INTO schema_migrations (version, name, checksum, execution_ms)
                        VALUES (\(migration.version), \(migration.name), \(checksums[migration.version]!),
                                \(Int32(clamping: elapsed.milliseconds)))
                        """)
                }
            } catch {
                throw MigrationError.failed(file: migration.fileName, reason: Self.reason(error))
            }
            logger.info(
                "applied migration",
                metadata: ["file": "\(migration.fileName)", "duration": "\(started.duration(to: .now))"])
            report.applied.append(migration.fileName)
        }
        return report
    }
}
