import LeaseholdPostgres
import LeaseholdTesting
import Testing

/// Deadlocks, lock timeouts and statement timeouts, provoked for real between two connections.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct PostgresLockingTests {
    /// Locks `first` then `second`, waiting after the first lock until the other side holds its own.
    @Sendable
    static func lockInOrder(
        _ connection: PostgresConnection, table: String, first: Int64, second: Int64,
        mine: ThreadSignal, theirs: ThreadSignal
    ) async throws {
        try await connection.query("SELECT id FROM \(unescaped: table) WHERE id = \(first) FOR UPDATE")
        mine.fire()
        try await theirs.wait()
        try await connection.query("SELECT id FROM \(unescaped: table) WHERE id = \(second) FOR UPDATE")
    }

    @Test("two connections locking rows in opposite order: one gets a retryable 40P01, the other commits")
    func deadlock() async throws {
        try await PostgresFixture.withClient(size: 2) { client in
            try await PostgresFixture.withTable(client, columns: "id bigint PRIMARY KEY") { table in
                try await client.execute("INSERT INTO \(unescaped: table) VALUES (1), (2)")
                // deadlock_timeout (1 s by default) is far below the lock timeout, so the server's
                // deadlock detector is what ends the wait.
                let options = PostgresTransactionOptions(lockTimeout: .seconds(20), statementTimeout: .seconds(20))
                let aHolds = ThreadSignal()
                let bHolds = ThreadSignal()
                async let a = PostgresFixture.outcome {
                    try await client.withTransaction(options) { connection in
                        try await Self.lockInOrder(
                            connection, table: table, first: 1, second: 2, mine: aHolds, theirs: bHolds)
                    }
                }
                async let b = PostgresFixture.outcome {
                    try await client.withTransaction(options) { connection in
                        try await Self.lockInOrder(
                            connection, table: table, first: 2, second: 1, mine: bHolds, theirs: aHolds)
                    }
                }
                let outcomes = await [a, b]
                let failures = outcomes.compactMap { outcome -> (any Error)? in
                    if case .failure(let error) = outcome { return error }
                    return nil
                }
                try #require(failures.count == 1, "exactly one side is chosen as the deadlock victim: \(failures)")
                let error = try #require(failures[0] as? PostgresTransactionError)
                #expect(error.isRetryable)
                #expect(error.postgresError?.sqlState == SQLState.deadlockDetected)
                let bodyError = try #require(error.bodyError as? PostgresError)
                #expect(bodyError.sqlState == SQLState.deadlockDetected)
                #expect(bodyError.source == .server)
                #expect(error.beginError == nil)
                #expect(error.rollbackError == nil)
                #expect(error.commitError == nil)
            }
        }
    }

    @Test("lock_timeout from PostgresTransactionOptions fails a blocked lock with retryable 55P03")
    func lockTimeout() async throws {
        try await PostgresFixture.withClient(size: 2) { client in
            try await PostgresFixture.withTable(client, columns: "id bigint PRIMARY KEY") { table in
                try await client.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                let held = ThreadSignal()
                let done = ThreadSignal()
                async let holder: Void = client.withTransaction { connection in
                    try await connection.query("SELECT id FROM \(unescaped: table) WHERE id = 1 FOR UPDATE")
                    held.fire()
                    try await done.wait()
                }
                let clock = ContinuousClock()
                let start = clock.now
                let blocked: Result<Void, any Error> = await PostgresFixture.outcome {
                    try await client.withTransaction(PostgresTransactionOptions(lockTimeout: .milliseconds(200))) {
                        connection in
                        defer { done.fire() }
                        try await held.wait()
                        try await connection.query("SELECT id FROM \(unescaped: table) WHERE id = 1 FOR UPDATE")
                    }
                }
                let elapsed = clock.now - start
                try await holder

                guard case .failure(let failure) = blocked else {
                    Issue.record("the second transaction got the lock held by the first")
                    return
                }
                let error = try #require(failure as? PostgresTransactionError)
                #expect(error.postgresError?.sqlState == SQLState.lockNotAvailable)
                #expect(error.isRetryable)
                #expect((error.bodyError as? PostgresError)?.sqlState == SQLState.lockNotAvailable)
                #expect(elapsed < .seconds(10))
            }
        }
    }

    @Test("statement_timeout from PostgresTransactionOptions cancels a slow statement with 57014")
    func statementTimeout() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let clock = ContinuousClock()
            let start = clock.now
            let error = try await #require(throws: PostgresTransactionError.self) {
                try await client.withTransaction(PostgresTransactionOptions(statementTimeout: .milliseconds(200))) {
                    connection in
                    try await connection.query("SELECT pg_sleep(10)")
                }
            }
            #expect(clock.now - start < .seconds(8))
            #expect(error.postgresError?.sqlState == SQLState.queryCanceled)
            #expect(error.isRetryable == false)
            #expect(error.rollbackError == nil)
        }
    }

    @Test("the timeouts are local to the transaction")
    func timeoutsAreTransactionLocal() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let settings = try await client.withConnection { connection in
                let before = try await connection.query("SHOW lock_timeout").single().decode(String.self, at: 0)
                let inside = try await connection.withTransaction(
                    PostgresTransactionOptions(lockTimeout: .milliseconds(1_500), statementTimeout: .seconds(7))
                ) { connection in
                    try await connection.query(
                        "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
                    )
                    .single().decode(String.self, String.self)
                }
                let after = try await connection.query("SHOW lock_timeout").single().decode(String.self, at: 0)
                return (before, inside.0, inside.1, after)
            }
            #expect(settings.1 == "1500ms")
            #expect(settings.2 == "7s")
            #expect(settings.3 == settings.0)
        }
    }
}
