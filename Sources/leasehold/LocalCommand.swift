import ArgumentParser
import Foundation
import LeaseholdLocalStack
import LeaseholdRuntime
import ServiceLifecycle

/// `leasehold local`: the embedded default.
struct LocalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "local",
        abstract: "Run PostgreSQL and Redis as child processes on 127.0.0.1 (the embedded default).",
        discussion: """
            Starts the installed Debian PostgreSQL and Redis servers with their data under --dir, creates \
            and migrates the database, prints POSTGRES_URL and REDIS_URL (also written to <dir>/env), and \
            keeps them running until Ctrl-C or SIGTERM, then stops both cleanly and exits 0. As root, \
            PostgreSQL runs as the postgres user. Redis keeps an append-only file, so entries survive a restart. \
            Server binaries: the newest /usr/lib/postgresql/*/bin (env: LEASEHOLD_PG_BINDIR) and redis-server on PATH.
            """
    )

    @Option(help: "Data, logs and env file directory.")
    var dir: String = ".leasehold/local"

    @Option(help: "PostgreSQL port (default: a free port).")
    var postgresPort: Int?

    @Option(help: "Redis port (default: a free port).")
    var redisPort: Int?

    @Option(help: "Directory of migrations (env: LEASEHOLD_MIGRATIONS_DIR; default ./Migrations).")
    var migrations: String?

    @Flag(help: "Do not apply migrations.")
    var noMigrate = false

    @Option(help: "trace, debug, info, notice, warning, error, critical (env: LOG_LEVEL).")
    var logLevel: String?

    func run() async throws {
        var common = CommonOptions()
        common.logLevelFlag = logLevel
        let logger = try common.bootstrapLogging(label: "leasehold.local")
        let files =
            try noMigrate
            ? nil
            : Migration.load(
                from: migrations.map { URL(fileURLWithPath: $0) } ?? Migration.defaultDirectory())
        let stack = try LocalStack(
            options: LocalStackOptions(
                directory: URL(fileURLWithPath: dir), postgresPort: postgresPort, redisPort: redisPort),
            logger: logger)
        let service = LocalStackService(stack: stack, migrations: files, logger: logger) { stack in
            // Unbuffered: scripts wait for these lines through a pipe.
            FileHandle.standardOutput.write(
                Data(
                    """
                    POSTGRES_URL=\(stack.postgresURL)
                    REDIS_URL=\(stack.redisURL)
                    ready; Ctrl-C or SIGTERM stops both servers

                    """.utf8))
        }
        let group = ServiceGroup(
            configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
