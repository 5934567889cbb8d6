import Foundation
import LeaseholdReactor
import LeaseholdTesting
import Testing

@testable import LeaseholdPostgres

extension UnitTests {
    /// Host names resolved before libpq sees them: the `host`/`hostaddr`/`port` lists handed to libpq
    /// (one entry per address, names kept, multi-host order kept), and connections opened that way.
    struct PostgresHostAddressesTests {
        @Test("multi-host: a name per address, hostaddr matched by position, per-host ports expanded")
        func multiHostParameters() throws {
            let hosts = PostgresHostAddresses(
                hosts: ["db1", "10.0.0.9", "/var/run/postgresql", "db2", "db1"],
                ports: ["5432", "5433", "5434", "5435", "5436"])
            #expect(hosts.names == ["db1", "db2"])
            let parameters = try #require(
                hosts.parameters(addresses: ["db1": ["10.1.0.1", "fd00::1"], "db2": ["10.2.0.1"]]))
            let values = Dictionary(uniqueKeysWithValues: parameters.map { ($0.keyword, $0.value) })
            #expect(values["host"] == "db1,db1,10.0.0.9,/var/run/postgresql,db2,db1,db1")
            #expect(values["hostaddr"] == "10.1.0.1,fd00::1,,,10.2.0.1,10.1.0.1,fd00::1")
            #expect(values["port"] == "5432,5432,5433,5434,5435,5436,5436")
            // libpq refuses lists of different lengths.
            for keyword in ["host", "hostaddr", "port"] {
                #expect(values[keyword]?.split(separator: ",", omittingEmptySubsequences: false).count == 7)
            }
        }

        @Test("one port for every host stays one; a name that did not resolve is left out")
        func sharedPortAndUnresolvedName() throws {
            let hosts = PostgresHostAddresses(hosts: ["db1", "db2"], ports: ["5432"])
            let parameters = try #require(hosts.parameters(addresses: ["db2": ["10.2.0.1", "10.2.0.2"]]))
            #expect(parameters.map(\.keyword) == ["host", "hostaddr"])
            #expect(parameters.map(\.value) == ["db2,db2", "10.2.0.1,10.2.0.2"])
            #expect(hosts.parameters(addresses: [:]) == nil)
        }

        @Test("what the connection string says: hosts and ports of both forms; nothing to do without names")
        func parsing() throws {
            func hosts(_ string: String, _ environment: [String: String] = [:]) -> PostgresHostAddresses? {
                PostgresHostAddresses(
                    configuration: PostgresConfiguration(connectionString: string), environment: environment)
            }
            #expect(
                hosts("postgres://app@db1:5432,db2:5433/leasehold?target_session_attrs=read-write")
                    == PostgresHostAddresses(hosts: ["db1", "db2"], ports: ["5432", "5433"]))
            #expect(
                hosts("host=db1,10.0.0.2 port=5432 dbname=leasehold")
                    == PostgresHostAddresses(hosts: ["db1", "10.0.0.2"], ports: ["5432"]))
            #expect(hosts("dbname=leasehold", ["PGHOST": "db3"]) == PostgresHostAddresses(hosts: ["db3"], ports: []))
            // Given addresses, literal addresses, sockets: libpq looks nothing up.
            #expect(hosts("host=db1 hostaddr=10.0.0.1 dbname=leasehold") == nil)
            #expect(hosts("postgres://app@127.0.0.1:5432,[::1]:5433/leasehold") == nil)
            #expect(hosts("host=/var/run/postgresql dbname=leasehold") == nil)
            #expect(hosts("dbname=leasehold") == nil)
            #expect(hosts("host='unterminated") == nil)
        }
    }
}

/// Connections opened with resolved addresses, against the integration server.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct PostgresNameResolutionTests {
    /// The integration server's URL with its host replaced by `host` (and `before`, a host:port
    /// listed first).
    static func url(host: String, before: String? = nil) throws -> String {
        var components = try #require(URLComponents(string: IntegrationEnvironment.postgresURL))
        let port = components.port ?? 5432
        components.host = "placeholder"
        components.port = nil
        let text = try #require(components.string)
        let authority = (before.map { "\($0)," } ?? "") + "\(host):\(port)"
        return text.replacingOccurrences(of: "placeholder", with: authority)
    }

    /// Connects with `resolver`, runs a query, and checks the connection reports `name`, not an address.
    static func expectConnection(
        _ configuration: PostgresConfiguration, resolver: NameResolver, reportedAs name: String
    ) async throws {
        try await PostgresReactorFixture.onReactor { reactor in
            let connection = try await PostgresConnection.connect(
                configuration: configuration, reactor: reactor, resolver: resolver)
            defer { connection.close() }
            #expect(connection.server.hasPrefix("\(name):"), "\(connection.server)")
            #expect(try await connection.simpleQuery("SELECT 1").rows.count == 1)
        }
    }

    @Test("a name the resolver knows: libpq connects to its address and still reports the name")
    func connectsByResolvedAddress() async throws {
        let name = "leasehold-db-under-test.invalid"
        let resolver = NameResolver(lookup: { host in
            host == name ? .success(["127.0.0.1"]) : .failure(.failed("Name or service not known"))
        })
        // A refusing host first: libpq still walks the list in order.
        let configuration = PostgresConfiguration(
            connectionString: try Self.url(host: name, before: "127.0.0.1:1"), connectTimeoutSeconds: 5)
        try await Self.expectConnection(configuration, resolver: resolver, reportedAs: name)
    }

    @Test("a name with several addresses: libpq tries each in turn (the first refuses) under the one name")
    func everyAddressOfANameIsTried() async throws {
        let name = "leasehold-db-two-addresses.invalid"
        // Nothing listens on 127.0.0.2 (the server binds 127.0.0.1): refused, then the next address.
        let resolver = NameResolver(lookup: { _ in .success(["127.0.0.2", "127.0.0.1"]) })
        let configuration = PostgresConfiguration(connectionString: try Self.url(host: name), connectTimeoutSeconds: 5)
        try await Self.expectConnection(configuration, resolver: resolver, reportedAs: name)
    }

    @Test("a name whose lookup hangs fails the connect after connect_timeout: name resolution timed out")
    func hangingLookupTimesOut() async throws {
        let gate = DispatchSemaphore(value: 0)
        let resolver = NameResolver(lookup: { _ in
            gate.wait()
            return .failure(.temporary("Temporary failure in name resolution"))
        })
        let configuration = PostgresConfiguration(
            connectionString: try Self.url(host: "silent-db.invalid"), connectTimeoutSeconds: 1)
        let clock = ContinuousClock()
        let started = clock.now
        let error = try await PostgresReactorFixture.onReactor { reactor in
            await #expect(throws: PostgresError.self) {
                try await PostgresConnection.connect(
                    configuration: configuration, reactor: reactor, resolver: resolver)
            }
        }
        let took = clock.now - started
        gate.signal()
        #expect(error?.sqlState == SQLState.unableToConnect)
        #expect(error?.message.contains("silent-db.invalid") == true, "\(String(describing: error))")
        #expect(error?.message.contains("name resolution timed out") == true, "\(String(describing: error))")
        #expect(took >= .seconds(1) && took < .seconds(3), "took \(took)")
    }

    @Test("localhost through the system resolver: connected, PQhost is the name")
    func localhostBySystemResolver() async throws {
        let configuration = PostgresConfiguration(connectionString: try Self.url(host: "localhost"))
        try await PostgresReactorFixture.onReactor { reactor in
            let connection = try await PostgresConnection.connect(configuration: configuration, reactor: reactor)
            defer { connection.close() }
            #expect(connection.server.hasPrefix("localhost:"), "\(connection.server)")
        }
    }
}
