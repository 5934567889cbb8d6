import LeaseholdPostgres
import LeaseholdTesting

/// Clients and throwaway tables for the integration suites. Every helper cleans up after itself,
/// whether the body returns or throws, because the suites run in parallel against one server.
enum PostgresFixture {
    /// Runs `body` with a new pooled client for the test server, then closes the client.
    static func withClient<T>(size: Int = 4, _ body: (PostgresClient) async throws -> T) async throws -> T {
        let client = IntegrationEnvironment.postgresClient(size: size)
        do {
            let value = try await body(client)
            await client.close()
            return value
        } catch {
            await client.close()
            throw error
        }
    }

    /// Creates a table with a unique name and the given column list, runs `body` with the table's
    /// name, then drops the table.
    static func withTable<T>(
        _ client: PostgresClient, columns: String, _ body: (String) async throws -> T
    ) async throws -> T {
        let table = IntegrationEnvironment.uniqueName("lh_test")
        try await client.query("CREATE TABLE \(unescaped: table) (\(unescaped: columns))")
        do {
            let value = try await body(table)
            try await client.query("DROP TABLE IF EXISTS \(unescaped: table)")
            return value
        } catch {
            _ = try? await client.query("DROP TABLE IF EXISTS \(unescaped: table)")
            throw error
        }
    }

    /// The value or error of `body`, for tests that expect some of several concurrent calls to fail.
    static func outcome<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
        do {
            return .success(try await body())
        } catch {
            return .failure(error)
        }
    }
}
