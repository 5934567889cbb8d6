import Foundation
import LeaseholdPostgres
import LeaseholdRuntime
import Logging
import ServiceLifecycle

/// Runs a ``LocalStack`` as a `Service`: start both servers, migrate, announce the URLs, then hold
/// them until graceful shutdown (SIGINT/SIGTERM through the `ServiceGroup`), and stop them cleanly.
public struct LocalStackService: Service {
    public let stack: LocalStack
    public let migrations: [Migration]?
    private let logger: Logger
    private let announce: @Sendable (LocalStack) -> Void

    /// - Parameters:
    ///   - migrations: applied after start; `nil` skips migrating.
    ///   - announce: called once both servers are up and migrated (prints the URLs).
    public init(
        stack: LocalStack, migrations: [Migration]?, logger: Logger,
        announce: @escaping @Sendable (LocalStack) -> Void
    ) {
        self.stack = stack
        self.migrations = migrations
        self.logger = logger
        self.announce = announce
    }

    public func run() async throws {
        do {
            try await stack.start()
            if let migrations {
                let client = PostgresClient(
                    configuration: PostgresConfiguration(connectionString: stack.postgresURL), size: 1)
                let report: Migrator.Report
                do {
                    report = try await Migrator(client: client, logger: logger).migrate(migrations)
                } catch {
                    await client.close()
                    throw error
                }
                await client.close()
                logger.info(
                    "migrated", metadata: ["applied": "\(report.applied.count)", "already": "\(report.alreadyApplied)"])
            }
        } catch {
            await stack.stop()
            throw error
        }
        announce(stack)
        try? await gracefulShutdown()
        logger.info("stopping Redis and PostgreSQL")
        await stack.stop()
    }
}
