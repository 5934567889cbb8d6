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
    func multiHostURL() async throws {
        let url = try Self.multiHostURL()
        let connection = try await PostgresSession.open(PostgresConfiguration(connectionString: url))
        defer { Task { await connection.close() } }
        let port = try #require(URLComponents(string: IntegrationEnvironment.postgresURL)?.port)
        let server = await connection.server
        #expect(server.hasSuffix(":\(port)"), "\(server)")
        #expect(await connection.effectiveParameters["target_session_attrs"] == "read-write")
        #expect(try await connection.simpleQuery("SELECT 1").rows.count == 1)
    }

    @Test("a key=value conninfo with several hosts and ports works the same")
    func multiHostConninfo() async throws {
        let probe = try await PostgresSession.open(IntegrationEnvironment.postgresConfiguration)
        let resolved = await probe.effectiveParameters
        await probe.close()
        let host = try #require(resolved["host"])
        let port = try #require(resolved["port"])
        var conninfo = "host=127.0.0.1,\(host) port=1,\(port)"
        for keyword in ["user", "dbname"] { if let value = resolved[keyword] { conninfo += " \(keyword)='\(value)'" } }
        let connection = try await PostgresSession.open(PostgresConfiguration(connectionString: conninfo))
        defer { Task { await connection.close() } }
        #expect(await connection.server == "\(host):\(port)")
    }

    @Test("the connection string's target_session_attrs wins over the default")
    func targetSessionAttributesOverride() async throws {
        let connection = try await PostgresSession.open(
            PostgresConfiguration(
                connectionString: try Self.multiHostURL(extraQuery: "target_session_attrs=any")))
        defer { Task { await connection.close() } }
        #expect(await connection.effectiveParameters["target_session_attrs"] == "any")
    }

    @Test("a read-only server is refused when the connection opens, with a connection error")
    func readOnlyServerIsRefused() async throws {
        // default_transaction_read_only for this session only: the server reports it as it opens,
        // exactly as a hot standby reports in_hot_standby.
        let url = try Self.multiHostURL(extraQuery: "options=-c%20default_transaction_read_only%3Don")
        let error = try await #require(throws: PostgresError.self) {
            try await PostgresSession.open(PostgresConfiguration(connectionString: url))
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
                    try await connection.simpleQuery("SET default_transaction_read_only = on")
                    let error = await #expect(throws: PostgresError.self) {
                        try await connection.query("INSERT INTO \(unescaped: table) VALUES (1)")
                    }
                    #expect(error?.sqlState == SQLState.readOnlySQLTransaction)
                    #expect(await !connection.isReusable(), "a read-only session must not be reused for writes")
                    return connection.backendPID
                }
                let second = try await client.withConnection { connection in
                    try await connection.query("INSERT INTO \(unescaped: table) VALUES (2)")
                    return connection.backendPID
                }
                #expect(first != second, "a new connection, to whichever node is writable")
            }
        }
    }
}
