import Foundation
import LeaseholdPostgres
import LeaseholdReactor
import LeaseholdTesting
import Testing

/// Sending a statement that does not fit in the socket buffers while the server is writing to
/// the connection: libpq asks its caller to wait for the socket to be readable *or* writable
/// after `PQflush` returns 1 and to read on readability, or both sides wait for each other.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct PostgresFlushTests {
    @Test("a 32 MB statement is sent while the server writes 24 MB of notifications to the connection")
    func bigStatementWhileTheServerWrites() async throws {
        try await PostgresReactorFixture.withClient(size: 2) { observer, reactor in
            let connection = try await PostgresConnection.connect(
                configuration: IntegrationEnvironment.postgresConfiguration, reactor: reactor)
            defer { connection.close() }
            let channel = IntegrationEnvironment.uniqueName("lh_test")
            try await connection.execute("LISTEN \(unescaped: channel)")
            let pid = try await connection.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)

            // 3,000 notifications of about 8 kB, more than the loopback socket buffers hold. The
            // server writes them to the listening session as soon as it is idle, and blocks when
            // the buffers are full: until the client reads, it reads nothing from it.
            try await observer.execute(
                """
                SELECT pg_notify(\(channel), i::text || repeat('x', 7990)) FROM generate_series(1, 3000) AS i
                """)
            try await Task.sleep(for: .milliseconds(200))

            // If the client only waits for writability it never gets it: end the session after
            // 20 s so that the test fails rather than hangs.
            let watchdog = Task(executorPreference: reactor) {
                try await Task.sleep(for: .seconds(20))
                _ = try await observer.query("SELECT pg_terminate_backend(\(pid))")
            }
            defer { watchdog.cancel() }
            let clock = ContinuousClock()
            let start = clock.now
            let text = String(repeating: "y", count: 32 << 20)
            let length = try await connection.query("SELECT length(\(text))").single().decode(Int64.self, at: 0)
            #expect(length == 32 << 20)
            #expect(clock.now - start < .seconds(20))
        }
    }
}
