import Foundation
import LeaseholdReactor
import LeaseholdTesting
import Testing

@testable import LeaseholdPostgres

/// `query(_:preparedAs:)`: a statement is prepared once per connection and then only executed;
/// its binds, its errors and the connection's health are those of an ordinary query.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct PostgresPreparedStatementTests {
    @Test("prepared once per connection, executed with each call's binds")
    func preparedOnceAndExecutedWithEachCallsBinds() async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            for value in [1, 2, 40] as [Int64] {
                let row = try await connection.query(
                    "SELECT \(value) * 2, \("x\(value)"), \(Optional<String>.none)", preparedAs: "double_it"
                ).single()
                #expect(try row.decode(Int64.self, String.self, String?.self) == (value * 2, "x\(value)", nil))
            }
            // The session holds the statement under its name, prepared from the protocol (not SQL
            // PREPARE), once: the calls after the first were executions.
            let rows = try await connection.query(
                "SELECT statement, from_sql FROM pg_prepared_statements WHERE name = 'double_it'")
            let (statement, fromSQL) = try rows.single().decode(String.self, Bool.self)
            #expect(statement == "SELECT $1 * 2, $2, $3")
            #expect(!fromSQL)
            let generic = try await connection.query(
                "SELECT generic_plans + custom_plans FROM pg_prepared_statements WHERE name = 'double_it'"
            ).single().decode(Int64.self, at: 0)
            #expect(generic == 3, "three executions of one prepared statement")
        }
    }

    @Test("a statement that fails to prepare is not remembered, and the connection stays usable")
    func aFailedPreparationIsNotRemembered() async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            for _ in 0..<2 {
                await #expect(throws: PostgresError.self) {
                    try await connection.query("SELECT FROM no_such_table_here", preparedAs: "broken")
                }
            }
            let count = try await connection.query(
                "SELECT count(*) FROM pg_prepared_statements WHERE name = 'broken'"
            ).single().decode(Int64.self, at: 0)
            #expect(count == 0)
            let one = try await connection.query("SELECT 1").single().decode(Int64.self, at: 0)
            #expect(one == 1)
        }
    }

    @Test("an execution that fails keeps the statement prepared and the connection usable")
    func aFailedExecutionKeepsTheStatement() async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            let divide: (Int64) -> PostgresQuery = { divisor in "SELECT 10 / \(divisor)" }
            let two = try await connection.query(divide(5), preparedAs: "divide").single().decode(Int64.self, at: 0)
            #expect(two == 2)
            do {
                _ = try await connection.query(divide(0), preparedAs: "divide")
                Issue.record("division by zero succeeded")
            } catch {
                #expect((error as? PostgresError)?.sqlState == "22012", "\(error)")
            }
            let five = try await connection.query(divide(2), preparedAs: "divide").single().decode(Int64.self, at: 0)
            #expect(five == 5)
        }
    }

    @Test("inside a transaction that rolls back, the statement stays prepared for the session")
    func aRollbackKeepsTheStatement() async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            struct Rollback: Error {}
            do {
                _ = try await connection.withTransaction { transaction in
                    _ = try await transaction.query("SELECT \(Int64(1))", preparedAs: "in_transaction")
                    throw Rollback()
                }
            } catch {}
            let seven = try await connection.query("SELECT \(Int64(7))", preparedAs: "in_transaction").single()
                .decode(Int64.self, at: 0)
            #expect(seven == 7)
        }
    }

    @Test("a statement deallocated behind the cache's back (26000) is prepared again and the call succeeds")
    func aDeallocatedStatementIsPreparedAgain() async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            let one = try await connection.query("SELECT \(Int64(1)) + 1", preparedAs: "add_one").single()
            #expect(try one.decode(Int64.self, at: 0) == 2)
            // What a pooler without prepared statements, or anyone's DEALLOCATE, does to the session.
            try await connection.simpleQuery("DEALLOCATE ALL")
            let two = try await connection.query("SELECT \(Int64(2)) + 1", preparedAs: "add_one").single()
            #expect(try two.decode(Int64.self, at: 0) == 3)
            let three = try await connection.query("SELECT \(Int64(3)) + 1", preparedAs: "add_one").single()
            #expect(try three.decode(Int64.self, at: 0) == 4)
            let prepared = try await connection.query(
                "SELECT count(*) FROM pg_prepared_statements WHERE name = 'add_one'"
            ).single().decode(Int64.self, at: 0)
            #expect(prepared == 1)
        }
    }

    @Test("a statement whose result type changed (0A000 cached plan) is deallocated, prepared again and run")
    func aStatementWhoseResultChangedIsPreparedAgain() async throws {
        try await PostgresReactorFixture.withClient(size: 1) { observer, reactor in
            try await PostgresReactorFixture.withTable(observer, columns: "id bigint, label text") { table in
                try await observer.query("INSERT INTO \(unescaped: table) VALUES (1, 'one')")
                let connection = try await PostgresConnection.connect(
                    configuration: IntegrationEnvironment.postgresConfiguration, reactor: reactor)
                defer { connection.close() }
                let select: PostgresQuery = "SELECT * FROM \(unescaped: table) WHERE id = \(Int64(1))"
                let before = try await connection.query(select, preparedAs: "read_row").single()
                #expect(try before.decode(Int64.self, String.self) == (Int64(1), "one"))

                // A migration changes the result's type under the prepared statement.
                try await observer.query("ALTER TABLE \(unescaped: table) ALTER COLUMN label TYPE varchar(20)")
                try await observer.query("ALTER TABLE \(unescaped: table) ADD COLUMN added integer")
                let after = try await connection.query(select, preparedAs: "read_row")
                #expect(after.columns == ["id", "label", "added"])
                #expect(try after.single().decode(Int64.self, String.self) == (Int64(1), "one"))
                let again = try await connection.query(select, preparedAs: "read_row")
                #expect(again.columns == ["id", "label", "added"])
            }
        }
    }

    @Test("a stale statement inside a transaction fails it as retryable; the retried transaction succeeds")
    func aStaleStatementInATransactionIsRetryable() async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            _ = try await connection.query("SELECT \(Int64(1))", preparedAs: "in_transaction")
            try await connection.simpleQuery("DEALLOCATE ALL")
            do {
                _ = try await connection.withTransaction { transaction in
                    try await transaction.query("SELECT \(Int64(2))", preparedAs: "in_transaction")
                }
                Issue.record("ran a statement the session no longer had")
            } catch let error as PostgresTransactionError {
                #expect(error.postgresError?.sqlState == "26000", "\(error)")
                #expect(error.isRetryable, "the transaction's retry prepares the statement anew")
            }
            let value = try await connection.withTransaction { transaction in
                try await transaction.query("SELECT \(Int64(3))", preparedAs: "in_transaction").single()
                    .decode(Int64.self, at: 0)
            }
            #expect(value == 3)
        }
    }
}
