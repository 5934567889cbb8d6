import LeaseholdPostgres
import LeaseholdReactor
import LeaseholdTesting

/// A reactor, and async clients and connections on it, for the suites of the non-blocking
/// driver. Every helper runs its body on the reactor (`withTaskExecutorPreference`), closes what
/// it opened and shuts the reactor down afterwards, whether the body returns or throws.
enum PostgresReactorFixture {
    /// Runs `body` on a new reactor's thread, then shuts the reactor down.
    static func onReactor<T>(_ body: (Reactor) async throws -> T) async throws -> T {
        let reactor = Reactor(label: "test.postgres-async")
        defer { reactor.shutDown() }
        return try await withTaskExecutorPreference(reactor) { try await body(reactor) }
    }

    /// Runs `body` with a new async client of `size` connections on a new reactor, on that
    /// reactor, then closes the client and shuts the reactor down.
    static func withClient<T>(
        size: Int = 4, _ body: (PostgresClient, Reactor) async throws -> T
    ) async throws -> T {
        try await onReactor { reactor in
            try await withClient(on: reactor, size: size) { client in try await body(client, reactor) }
        }
    }

    /// Runs `body` with a new async client on `reactor` (the current one), then closes it.
    static func withClient<T>(
        on reactor: Reactor, size: Int = 4, _ body: (PostgresClient) async throws -> T
    ) async throws -> T {
        let client = PostgresClient(
            configuration: IntegrationEnvironment.postgresConfiguration, reactor: reactor, size: size)
        do {
            let value = try await body(client)
            await client.close()
            return value
        } catch {
            await client.close()
            throw error
        }
    }

    /// Runs `body` with one connection opened on a new reactor, then closes both.
    static func withConnection<T>(
        _ body: (PostgresConnection, Reactor) async throws -> T
    ) async throws -> T {
        try await onReactor { reactor in
            let connection = try await PostgresConnection.connect(
                configuration: IntegrationEnvironment.postgresConfiguration, reactor: reactor)
            defer { connection.close() }
            return try await body(connection, reactor)
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

    /// Waits until a statement containing `marker` is running on the server, so a cancel or a
    /// terminate is known to hit a running statement rather than race its start.
    static func waitUntilRunning(_ marker: String, observer: PostgresClient) async throws -> Int32? {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while clock.now < deadline {
            let running = try await observer.query(
                """
                SELECT pid FROM pg_stat_activity
                WHERE state = 'active' AND pid <> pg_backend_pid() AND position(\(marker) IN query) > 0
                """
            )
            if let row = running.first { return try row.decode(Int32.self, at: 0) }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }
}
