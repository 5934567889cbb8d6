import Foundation
import LeaseholdPostgres
import LeaseholdReactor
import LeaseholdTesting
import Testing

/// Statements over TLS (`sslmode=require`) on the reactor, whose results span many TLS records.
///
/// OpenSSL decrypts a whole record at a time. When libpq asks for fewer bytes than the record
/// holds, the rest stays inside OpenSSL, already read from the socket: epoll no longer reports
/// the socket readable, so a loop that waits for readability whenever `PQisBusy` says the result
/// is incomplete can wait for ever on bytes the client already has. libpq's own blocking calls
/// look at OpenSSL's buffer before they poll; a reactor has to do the same.
///
/// PostgreSQL itself never sends records of more than 8 kB, which libpq always reads whole; a TLS
/// terminator in front of it (here stunnel) sends records of up to 16 kB, as poolers and other
/// servers of PostgreSQL's protocol do. Each test runs 1,000 statements (rows of more than 16 kB,
/// many mid-size rows, results of up to 1 MB) from four tasks sharing a pool of four connections,
/// and gives every statement 5 s.
@Suite(
    .enabled(if: IntegrationEnvironment.serverBinariesInstalled && PostgresTLSProxy.isAvailable),
    .timeLimit(.minutes(5)), .serialized)
struct PostgresTLSTests {
    static let statements = 1_000
    static let bound: Duration = .seconds(5)

    @Test("1,000 large results over PostgreSQL's own TLS, and the same in plaintext for comparison")
    func largeResultsOverTheServersTLS() async throws {
        let server = try await TLSPostgres.start()
        do {
            let plain = try await Self.workload(
                server.configuration(server.serverURL(sslmode: "disable")), tls: false, serverSeesTLS: false)
            let encrypted = try await Self.workload(
                server.configuration(server.serverURL()), tls: true, serverSeesTLS: true)
            print("PostgresTLSTests: \(Self.statements) statements in plaintext \(plain), over TLS \(encrypted)")
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test("1,000 large results through a TLS terminator that sends 16 kB records")
    func largeResultsThroughATLSProxy() async throws {
        let server = try await TLSPostgres.start()
        do {
            let elapsed = try await Self.workload(
                server.configuration(server.proxyURL), tls: true, serverSeesTLS: false)
            print("PostgresTLSTests: \(Self.statements) statements through stunnel \(elapsed)")
            #expect(server.proxy.log.contains("accepted connection"), "the connections went through stunnel")
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    /// One statement's shape: `rows` rows of a text of `length` bytes.
    struct Shape: Sendable {
        var rows: Int32
        var length: Int32
    }

    /// The shape of statement `index`: rows of 16 kB to 64 kB, one or a few; 50 to 200 rows of
    /// 300 B to 3 kB; and every tenth a result of 256 kB to 1 MB in 4 kB rows. The lengths come
    /// from a fixed sequence, so every run sends the same statements.
    static func shape(_ index: Int) -> Shape {
        var state = UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15 &+ 0x2545_F491_4F6C_DD1D
        func next(_ range: ClosedRange<Int32>) -> Int32 {
            state ^= state >> 33
            state &*= 0xFF51_AFD7_ED55_8CCD
            state ^= state >> 33
            return range.lowerBound + Int32(state % UInt64(range.upperBound - range.lowerBound + 1))
        }
        if index % 10 == 9 { return Shape(rows: next(64...256), length: 4_096) }
        switch index % 3 {
        case 0: return Shape(rows: 1, length: next(16_385...65_536))
        case 1: return Shape(rows: next(2...8), length: next(16_385...32_768))
        default: return Shape(rows: next(50...200), length: next(300...3_000))
        }
    }

    /// Runs the 1,000 statements over `configuration` from four tasks on a new reactor, checks
    /// every result and that the connections are (`tls`) or are not encrypted (and whether the
    /// server is the TLS end: not behind a proxy), and returns the time they took. A statement that has not returned within ``bound`` is an issue: it is
    /// cancelled, and its task stops.
    static func workload(
        _ configuration: PostgresConfiguration, tls: Bool, serverSeesTLS: Bool
    ) async throws -> Duration {
        try await PostgresReactorFixture.onReactor { reactor in
            let client = PostgresClient(configuration: configuration, reactor: reactor, size: 4)
            do {
                let elapsed = try await workload(client, tls: tls, serverSeesTLS: serverSeesTLS)
                await client.close()
                return elapsed
            } catch {
                await client.close()
                throw error
            }
        }
    }

    private static func workload(
        _ client: PostgresClient, tls: Bool, serverSeesTLS: Bool
    ) async throws -> Duration {
        try await client.withConnection { connection in
            #expect(connection.usesTLS == tls, "PQsslInUse")
            let serverSide = try await connection.query(
                "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)"
            ).single().decode(Bool.self, at: 0)
            #expect(serverSide == serverSeesTLS, "pg_stat_ssl.ssl")
        }
        let lanes = 4
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    for index in stride(from: lane, to: statements, by: lanes) {
                        let shape = shape(index)
                        let started = clock.now
                        let rows = try await within(bound) {
                            try await client.query(
                                "SELECT repeat('x', \(shape.length)) FROM generate_series(1, \(shape.rows))")
                        }
                        guard let rows else {
                            Issue.record(
                                """
                                statement \(index) (\(shape.rows) rows of \(shape.length) bytes) had no result \
                                after \(clock.now - started): waiting for the socket while the bytes were \
                                already read
                                """)
                            return
                        }
                        #expect(rows.count == Int(shape.rows), "statement \(index)")
                        for row in rows.rows {
                            #expect(try row.decode(String.self, at: 0).utf8.count == Int(shape.length))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        return clock.now - start
    }

    /// `body`'s value, or `nil` when it has not returned within `bound` (it is then cancelled,
    /// and awaited).
    static func within<T: Sendable>(
        _ bound: Duration, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T? {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: bound)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }
}
