import LeaseholdPostgres
import LeaseholdTesting
import Testing

/// Connections carry TCP keepalives and `tcp_user_timeout` by default, so a silent network loss
/// fails a query within about a minute; a connection string that sets one of them keeps its value.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct PostgresKeepaliveTests {
    static let expectedDefaults = [
        "keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10", "keepalives_count": "3",
        "tcp_user_timeout": "60000",
    ]

    @Test("a live connection opened with the defaults has keepalives and tcp_user_timeout")
    func defaultsReachTheConnection() async throws {
        let connection = try await PostgresSession.open(IntegrationEnvironment.postgresConfiguration)
        defer { Task { await connection.close() } }
        let parameters = await connection.effectiveParameters
        for (keyword, value) in Self.expectedDefaults {
            #expect(parameters[keyword] == value, "\(keyword): \(parameters[keyword] ?? "unset")")
        }
        #expect(parameters["connect_timeout"] == "5")
        #expect(parameters["password"] == nil)
    }

    @Test("a URL parameter wins over the default")
    func urlOverridesADefault() async throws {
        let url = IntegrationEnvironment.postgresURL
        let separator = url.contains("?") ? "&" : "?"
        let overriding = url + separator + "keepalives_idle=5&connect_timeout=7"
        let connection = try await PostgresSession.open(PostgresConfiguration(connectionString: overriding))
        defer { Task { await connection.close() } }
        let parameters = await connection.effectiveParameters
        #expect(parameters["keepalives_idle"] == "5")
        #expect(parameters["connect_timeout"] == "7")
        #expect(parameters["keepalives_interval"] == "10", "the other defaults still apply")
        #expect(try await connection.simpleQuery("SELECT 1").rows.count == 1)
    }

    @Test("a key=value conninfo parameter wins over the default")
    func conninfoOverridesADefault() async throws {
        // The test server's address, as libpq resolved it from the URL.
        let probe = try await PostgresSession.open(IntegrationEnvironment.postgresConfiguration)
        let resolved = await probe.effectiveParameters
        await probe.close()
        let conninfo = ["host", "port", "user", "dbname"].compactMap { keyword in
            resolved[keyword].map { "\(keyword)='\($0)'" }
        }.joined(separator: " ")
        let connection = try await PostgresSession.open(
            PostgresConfiguration(connectionString: conninfo + " tcp_user_timeout=1234 keepalives=0"))
        defer { Task { await connection.close() } }
        let parameters = await connection.effectiveParameters
        #expect(parameters["tcp_user_timeout"] == "1234")
        #expect(parameters["keepalives"] == "0")
        #expect(parameters["keepalives_count"] == "3")
        #expect(try await connection.simpleQuery("SELECT 1").rows.count == 1)
    }
}
