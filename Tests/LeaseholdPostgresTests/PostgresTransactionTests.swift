import LeaseholdPostgres
import LeaseholdTesting
import Synchronization
import Testing

/// `withTransaction` commits, rolls back, and keeps begin / body / rollback / commit errors apart.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct PostgresTransactionTests {
    struct BodyFailure: Error, Equatable {
        var reason: String
    }

    static func count(_ client: PostgresClient, _ table: String) async throws -> Int64 {
        try await client.query("SELECT count(*) FROM \(unescaped: table)").single().decode(Int64.self, at: 0)
    }

    /// Whether `connection` is outside any transaction block: in the simple-query protocol a
    /// statement outside a block gets its own transaction, whose start (`now()`) is the statement's.
    static func isIdle(_ connection: PostgresConnection) async throws -> Bool {
        try await connection.simpleQuery("SELECT now() = statement_timestamp()").single().decode(String.self, at: 0)
            == "t"
    }

    @Test("a body that returns commits and its value comes back")
    func commits() async throws {
        try await PostgresFixture.withClient(size: 2) { client in
            try await PostgresFixture.withTable(client, columns: "id bigint PRIMARY KEY, note text") { table in
                let value = try await client.withTransaction { connection in
                    try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1, 'one'), (2, 'two')")
                }
                #expect(value == 2)
                #expect(try await Self.count(client, table) == 2)
            }
        }
    }

    @Test("a body that throws is rolled back and its error is kept as bodyError")
    func bodyErrorRollsBack() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withTable(client, columns: "id bigint PRIMARY KEY") { table in
                let error = try await #require(throws: PostgresTransactionError.self) {
                    try await client.withTransaction { connection in
                        try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                        throw BodyFailure(reason: "changed my mind")
                    }
                }
                #expect(error.bodyError as? BodyFailure == BodyFailure(reason: "changed my mind"))
                #expect(error.beginError == nil)
                #expect(error.rollbackError == nil)
                #expect(error.commitError == nil)
                #expect(error.isRetryable == false)
                #expect(error.description.hasPrefix("transaction rolled back"))
                #expect(try await Self.count(client, table) == 0)
            }
        }
    }

    @Test("a server error thrown out of the body is the bodyError, and nothing is committed")
    func serverErrorInBody() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withTable(client, columns: "id bigint PRIMARY KEY") { table in
                let error = try await #require(throws: PostgresTransactionError.self) {
                    try await client.withTransaction { connection in
                        try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                        try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                    }
                }
                #expect((error.bodyError as? PostgresError)?.sqlState == SQLState.uniqueViolation)
                #expect(error.postgresError?.sqlState == SQLState.uniqueViolation)
                #expect(try await Self.count(client, table) == 0)
            }
        }
    }

    @Test("a body that swallows a server error and returns gets commitError 25P02; nothing is committed")
    func swallowedErrorIsCommitError() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withTable(client, columns: "id bigint PRIMARY KEY") { table in
                let error = try await #require(throws: PostgresTransactionError.self) {
                    try await client.withTransaction { connection in
                        try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                        do {
                            try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                        } catch {
                            // Swallowed on purpose: the transaction is now aborted on the server.
                        }
                        return "pretending all is well"
                    }
                }
                let commitError = try #require(error.commitError)
                #expect(commitError.sqlState == "25P02")
                #expect(error.bodyError == nil)
                #expect(error.beginError == nil)
                #expect(error.description.hasPrefix("transaction commit failed"))
                #expect(try await Self.count(client, table) == 0)
                // The connection was left idle, not inside the aborted transaction.
                #expect(try await client.query("SELECT 1").single().decode(Int64.self, at: 0) == 1)
            }
        }
    }

    @Test("a constraint checked at COMMIT fails the commit itself (commitError 23505); nothing is committed")
    func deferredConstraintFailsCommit() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withTable(
                client, columns: "id bigint, CONSTRAINT deferred_id UNIQUE (id) DEFERRABLE INITIALLY DEFERRED"
            ) { table in
                let bodyRan = Atomic<Bool>(false)
                let error = try await #require(throws: PostgresTransactionError.self) {
                    try await client.withTransaction { connection in
                        try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1), (1)")
                        bodyRan.store(true, ordering: .relaxed)
                    }
                }
                let ran = bodyRan.load(ordering: .relaxed)
                #expect(ran)
                let commitError = try #require(error.commitError)
                #expect(commitError.sqlState == SQLState.uniqueViolation)
                #expect(commitError.constraint == "deferred_id")
                #expect(commitError.source == .server)
                #expect(error.bodyError == nil)
                #expect(try await Self.count(client, table) == 0)
            }
        }
    }

    @Test("a failing BEGIN is a beginError: the body never runs and the connection is left idle")
    func beginError() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            // lock_timeout is capped at INT_MAX milliseconds (about 24.8 days): 30 days is refused by
            // set_config, after BEGIN succeeded.
            let options = PostgresTransactionOptions(lockTimeout: .seconds(30 * 86_400))
            let bodyRan = Atomic<Bool>(false)
            let (failure, idleAfterwards) = try await client.withConnection { connection in
                var failure: PostgresTransactionError?
                do throws(PostgresTransactionError) {
                    try await connection.withTransaction(options) { _ in bodyRan.store(true, ordering: .relaxed) }
                } catch {
                    failure = error
                }
                return (failure, try await Self.isIdle(connection))
            }
            let ran = bodyRan.load(ordering: .relaxed)
            #expect(ran == false)
            let error = try #require(failure)
            let beginError = try #require(error.beginError)
            #expect(beginError.sqlState == "22023")
            #expect(error.bodyError == nil)
            #expect(error.commitError == nil)
            #expect(error.description.hasPrefix("transaction could not begin"))
            #expect(idleAfterwards)
        }
    }

    @Test("a body that loses its connection gets bodyError and rollbackError; the pool then reconnects")
    func rollbackError() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withTable(client, columns: "id bigint") { table in
                let victim = try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
                let error = try await #require(throws: PostgresTransactionError.self) {
                    try await client.withTransaction { connection in
                        try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                        try await connection.query("SELECT pg_terminate_backend(pg_backend_pid())")
                    }
                }
                let bodyError = try #require(error.bodyError as? PostgresError)
                #expect(bodyError.source == .connection)
                let rollbackError = try #require(error.rollbackError)
                #expect(rollbackError.source == .connection)
                #expect(error.commitError == nil)
                #expect(error.isRetryable)
                #expect(error.description.contains("rollback also failed"))

                let replacement = try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
                #expect(replacement != victim)
                #expect(try await Self.count(client, table) == 0)
            }
        }
    }

    @Test("isolation level and READ ONLY reach the server")
    func options() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let isolation = try await client.withTransaction(PostgresTransactionOptions(isolation: .serializable)) {
                try await $0.query("SHOW transaction_isolation").single().decode(String.self, at: 0)
            }
            #expect(isolation == "serializable")
            let repeatable = try await client.withTransaction(PostgresTransactionOptions(isolation: .repeatableRead)) {
                try await $0.query("SHOW transaction_isolation").single().decode(String.self, at: 0)
            }
            #expect(repeatable == "repeatable read")

            try await PostgresFixture.withTable(client, columns: "id bigint") { table in
                let error = try await #require(throws: PostgresTransactionError.self) {
                    try await client.withTransaction(PostgresTransactionOptions(readOnly: true)) { connection in
                        try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                    }
                }
                #expect(error.postgresError?.sqlState == "25006")
            }
        }
    }

    @Test("a transaction left open by withConnection is rolled back before the connection is lent again")
    func abandonedTransactionIsRolledBack() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withTable(client, columns: "id bigint") { table in
                let idleWhileOpen = try await client.withConnection { connection in
                    try await connection.simpleQuery("BEGIN")
                    try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                    return try await Self.isIdle(connection)
                }
                #expect(idleWhileOpen == false)
                let (count, idle) = try await client.withConnection { connection in
                    let count = try await connection.query("SELECT count(*) FROM \(unescaped: table)")
                        .single().decode(Int64.self, at: 0)
                    return (count, try await Self.isIdle(connection))
                }
                #expect(count == 0)
                #expect(idle)
            }
        }
    }
}
