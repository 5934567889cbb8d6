import Foundation
import LeaseholdPostgres

/// A database of its own on the integration server, for tests that migrate or need an empty
/// schema; dropped by ``drop()``.
public struct TemporaryDatabase: Sendable {
    public let name: String
    public let url: String

    /// Creates `lh_<random>` on the server behind `POSTGRES_URL` (which must be a URL).
    public static func create() async throws -> TemporaryDatabase {
        let name = IntegrationEnvironment.uniqueName("lh")
        guard var components = URLComponents(string: IntegrationEnvironment.postgresURL) else {
            throw TestSetupError("POSTGRES_URL must be a postgres:// URL for tests that create databases")
        }
        components.path = "/\(name)"
        let admin = IntegrationEnvironment.postgresClient(size: 1)
        do {
            try await admin.query("CREATE DATABASE \(unescaped: name)")
        } catch {
            await admin.close()
            throw error
        }
        await admin.close()
        return TemporaryDatabase(name: name, url: components.string!)
    }

    public var configuration: PostgresConfiguration {
        PostgresConfiguration(connectionString: url, applicationName: "leasehold-tests")
    }

    public func client(size: Int = 4) -> PostgresClient {
        PostgresClient(configuration: configuration, size: size)
    }

    /// Drops the database, disconnecting anyone still on it.
    public func drop() async throws {
        let admin = IntegrationEnvironment.postgresClient(size: 1)
        try await admin.query("DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)")
        await admin.close()
    }
}
