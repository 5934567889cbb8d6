import Foundation
import LeaseholdPostgres
import LeaseholdTesting
import Testing

/// Several hosts in one connection string (libpq's failover form) and what keeps writes off a
/// read-only server: `target_session_attrs=read-write` by default when a connection opens, and a
/// connection that meets SQLSTATE 25006 later is replaced instead of lent out again.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct PostgresMultiHostTests {
    /// The test server's URL with a closed port (nothing listens on port 1) listed before it.
    static func multiHostURL(extraQuery: String = "") throws -> String {
        let components = try #require(URLComponents(string: IntegrationEnvironment.postgresURL))
        let host = try #require(components.host)
        let user = components.user.map { "\($0)@" } ?? ""
        var query = components.query.map { [$0] } ?? []
        if !extraQuery.isEmpty { query.append(extraQuery) }
        let tail = query.isEmpty ? "" : "?" + query.joined(separator: "&")
        return "postgres://\(user)127.0.0.1:1,\(host):\(components.port ?? 5432)\(components.path)\(tail)"
    }

    @Test("a multi-host URL passes over a host that refuses and connects to the next")
    func multiHostURL() throws {
        let url = try Self.multiHostURL()
        let connection = try PostgresConnection(configuration: PostgresConfiguration(connectionString: url))
        defer { connection.close() }
        let port = try #require(URLComponents(string: IntegrationEnvironment.postgresURL)?.port)
        #expect(connection.server.hasSuffix(":\(port)"), "\(connection.server)")
        #expect(connection.effectiveParameters["target_session_attrs"] == "read-write")
        #expect(try connection.simpleQuery("SELECT 1").rows.count == 1)
    }

    @Test("a key=value conninfo with several hosts and ports works the same")
    func multiHostConninfo() throws {
        let probe = try PostgresConnection(configuration: IntegrationEnvironment.postgresConfiguration)
        let resolved = probe.effectiveParameters
        probe.close()
        let host = try #require(resolved["host"])
        let port = try #require(resolved["port"])
        var conninfo = "host=127.0.0.1,\(host) port=1,\(port)"
        for keyword in ["user", "dbname"] { if let value = resolved[keyword] { conninfo += " \(keyword)='\(value)'" } }
        let connection = try PostgresConnection(configuration: PostgresConfiguration(connectionString: conninfo))
        defer { connection.close() }
        #expect(connection.server == "\(host):\(port)")
    }

    @Test("the connection string's target_session_attrs wins over the default")
    func targetSessionAttributesOverride() throws {
        let connection = try PostgresConnection(
            configuration: PostgresConfiguration(
                connectionString: try Self.multiHostURL(extraQuery: "target_session_attrs=any")))
        defer { connection.close() }
        #expect(connection.effectiveParameters["target_session_attrs"] == "any")
    }

    @Test("a read-only server is refused when the connection opens, with a connection error")
    func readOnlyServerIsRefused() throws {
        // default_transaction_read_only for this session only: the server reports it as it opens,
        // exactly as a hot standby reports in_hot_standby.
        let url = try Self.multiHostURL(extraQuery: "options=-c%20default_transaction_read_only%3Don")
        let error = try #require(throws: PostgresError.self) {
            try PostgresConnection(configuration: PostgresConfiguration(connectionString: url))
        }
        #expect(error.source == .connection)
        #expect(error.sqlState == SQLState.unableToConnect)
        #expect(error.message.contains("read-only"), "\(error.message)")
    }

    @Test("a connection refused a write with 25006 is not lent out again; the next call gets a new one")
    func readOnlyConnectionIsReplaced() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withTable(client, columns: "id int") { table in
                let first = try await client.withConnection { connection in
                    try connection.simpleQuery("SET default_transaction_read_only = on")
                    let error = #expect(throws: PostgresError.self) {
                        try connection.query("INSERT INTO \(unescaped: table) VALUES (1)")
                    }
                    #expect(error?.sqlState == SQLState.readOnlySQLTransaction)
                    #expect(!connection.isReusable(), "a read-only session must not be reused for writes")
                    return connection.backendPID
                }
                let second = try await client.withConnection { connection in
                    try connection.query("INSERT INTO \(unescaped: table) VALUES (2)")
                    return connection.backendPID
                }
                #expect(first != second, "a new connection, to whichever node is writable")
            }
        }
    }
}
