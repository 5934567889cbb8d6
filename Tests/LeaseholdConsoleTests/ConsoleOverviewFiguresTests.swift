import LeaseholdConsole
import LeaseholdPostgres
import LeaseholdTesting
import Testing

/// The dashboard's figures the overview shows without Prometheus, read from the real database.
@Suite("Console: the overview's figures", .enabled(if: IntegrationEnvironment.isAvailable))
struct ConsoleOverviewFiguresTests {
    /// Accepted to committed: the stream ID's milliseconds to the inbox row's `processed_at`, over
    /// the last minute only, as percentiles on the overview.
    @Test func endToEndLatencyPercentilesOfTheLastMinute() async throws {
        let server = try await ConsoleTestServer.start()
        let cookie = try await server.login()
        #expect(try await ConsoleOverview.Latency.read(postgres: server.postgres) == nil, "nothing processed yet")
        #expect(!(try await server.get("/", cookie: cookie).body.contains("accepted to committed")))

        // 1,000 rows committed now: 990 accepted 100 ms before, 9 two seconds before, one 30 s
        // before; and one committed two minutes ago after ten minutes (outside the window).
        try await server.postgres.execute(
            """
            INSERT INTO inbox (message_key, kind, outcome, stream, entry_id, processed_at)
            SELECT 'api:latency-' || g, 'booking', 'booked', 'bookings',
                   (floor(extract(epoch FROM now()) * 1000)::bigint
                    - CASE WHEN g <= 990 THEN 100 WHEN g <= 999 THEN 2000 ELSE 30000 END) || '-0',
                   now()
            FROM generate_series(1, 1000) AS g
            UNION ALL
            SELECT 'api:latency-old', 'booking', 'booked', 'bookings',
                   (floor(extract(epoch FROM now() - interval '12 minutes') * 1000)::bigint) || '-0',
                   now() - interval '2 minutes'
            """)
        let latency = try #require(try await ConsoleOverview.Latency.read(postgres: server.postgres))
        #expect((0.1...0.102).contains(latency.p50), "\(latency)")
        // percentile_cont interpolates: p99 lies between the 990th row (0.1 s) and the 991st (2 s).
        #expect((0.1...0.13).contains(latency.p99), "\(latency)")
        #expect((2.0...2.1).contains(latency.p999), "\(latency)")

        let page = try await server.get("/", cookie: cookie).body
        #expect(page.contains("<b>100 ms · 1"), "\(page)")
        #expect(page.contains("accepted to committed, p50 · p99 · p99.9, last minute"))
        await server.shutdown()
    }
}
