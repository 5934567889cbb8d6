import LeaseholdPostgres
import LeaseholdTesting
import Synchronization
import Testing

/// Cancelling the calling task cancels the statement on the server (`PQcancel`), promptly.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct PostgresCancelTests {
    /// Waits until a statement containing `marker` is running on the server, so a cancel is known to
    /// hit a running statement rather than race its start.
    static func waitUntilRunning(_ marker: String, observer: PostgresClient) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while clock.now < deadline {
            let running = try await observer.query(
                """
                SELECT count(*) FROM pg_stat_activity
                WHERE state = 'active' AND pid <> pg_backend_pid() AND position(\(marker) IN query) > 0
                """
            ).single().decode(Int64.self, at: 0)
            if running > 0 { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("statement \(marker) never showed up in pg_stat_activity")
    }

    @Test("cancelling a task running pg_sleep(60) throws 57014 promptly; the client keeps working")
    func cancelRunningStatement() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withClient(size: 1) { observer in
                let pid = try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
                let marker = IntegrationEnvironment.uniqueName("cancel")
                let task = Task {
                    try await client.query(PostgresQuery(unsafeSQL: "SELECT pg_sleep(60) /* \(marker) */"))
                }
                try await Task.sleep(for: .milliseconds(300))
                try await Self.waitUntilRunning(marker, observer: observer)

                let clock = ContinuousClock()
                let start = clock.now
                task.cancel()
                let result = await task.result
                let elapsed = clock.now - start

                #expect(elapsed < .seconds(10))
                guard case .failure(let failure) = result else {
                    Issue.record("pg_sleep(60) returned normally after cancel")
                    return
                }
                let error = try #require(failure as? PostgresError)
                #expect(error.sqlState == SQLState.queryCanceled)
                #expect(error.source == .server)

                // Same client, same connection: a cancelled statement does not cost the connection.
                let after = try await client.query("SELECT pg_backend_pid(), \("after cancel")::text").single()
                #expect(try after.decode(Int32.self, String.self) == (pid, "after cancel"))
            }
        }
    }

    @Test("cancelling a transaction's statement rolls the transaction back with bodyError 57014")
    func cancelInsideTransaction() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withClient(size: 1) { observer in
                try await PostgresFixture.withTable(observer, columns: "id bigint") { table in
                    let marker = IntegrationEnvironment.uniqueName("cancel")
                    let task = Task {
                        try await client.withTransaction { connection in
                            try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                            try await connection.query(PostgresQuery(unsafeSQL: "SELECT pg_sleep(60) /* \(marker) */"))
                        }
                    }
                    try await Self.waitUntilRunning(marker, observer: observer)
                    let clock = ContinuousClock()
                    let start = clock.now
                    task.cancel()
                    let result = await task.result
                    #expect(clock.now - start < .seconds(10))

                    guard case .failure(let failure) = result else {
                        Issue.record("the transaction committed after cancel")
                        return
                    }
                    let error = try #require(failure as? PostgresTransactionError)
                    #expect((error.bodyError as? PostgresError)?.sqlState == SQLState.queryCanceled)
                    #expect(error.rollbackError == nil)
                    let count = try await observer.query("SELECT count(*) FROM \(unescaped: table)")
                        .single().decode(Int64.self, at: 0)
                    #expect(count == 0)
                    #expect(try await client.query("SELECT 1").single().decode(Int64.self, at: 0) == 1)
                }
            }
        }
    }

    @Test("a task cancelled while waiting for a connection throws CancellationError; the pool stays intact")
    func cancelWhileWaitingForConnection() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let holding = Atomic<Bool>(false)
            let release = ThreadSignal()
            let holder = Task {
                try await client.withConnection { _ in
                    holding.store(true, ordering: .releasing)
                    try await release.wait()
                }
            }
            while !holding.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(5)) }

            let waiter = Task { try await client.query("SELECT 1") }
            try await Task.sleep(for: .milliseconds(100))
            waiter.cancel()
            let result = await waiter.result
            guard case .failure(let failure) = result else {
                Issue.record("the waiting query ran although the only connection was taken")
                release.fire()
                return
            }
            #expect(failure is CancellationError)

            release.fire()
            try await holder.value
            // The connection is back in the pool, lent exactly once at a time.
            async let first = client.query("SELECT 1")
            async let second = client.query("SELECT 2")
            let values = try await [first, second].map { try $0.single().decode(Int64.self, at: 0) }
            #expect(values == [1, 2])
        }
    }

    @Test("a task that is already cancelled does not run its statement")
    func alreadyCancelled() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withTable(client, columns: "id bigint") { table in
                let task = Task {
                    withUnsafeCurrentTask { $0?.cancel() }
                    return try await client.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                }
                let result = await task.result
                #expect(throws: CancellationError.self) { try result.get() }
                let count = try await client.query("SELECT count(*) FROM \(unescaped: table)")
                    .single().decode(Int64.self, at: 0)
                #expect(count == 0)
            }
        }
    }

    @Test("a closed client refuses new calls")
    func closedClient() async throws {
        let client = IntegrationEnvironment.postgresClient(size: 2)
        #expect(try await client.query("SELECT 1").single().decode(Int64.self, at: 0) == 1)
        await client.close()
        await #expect(throws: PostgresClientClosedError.self) { try await client.query("SELECT 1") }
    }
}
