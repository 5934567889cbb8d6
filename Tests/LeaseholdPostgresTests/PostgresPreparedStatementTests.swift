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
        try await PostgresAsyncFixture.withConnection { connection, _ in
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
        try await PostgresAsyncFixture.withConnection { connection, _ in
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
        try await PostgresAsyncFixture.withConnection { connection, _ in
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
        try await PostgresAsyncFixture.withConnection { connection, _ in
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
}
