import LeaseholdPostgres
import LeaseholdTesting
import Testing

/// Server errors arrive with their SQLSTATE and diagnostic fields, redacted in `description`.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable))
struct PostgresErrorTests {
    @Test("a unique violation is 23505 with the constraint and table, values only in debugDescription")
    func uniqueViolation() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let email = "alice+\(IntegrationEnvironment.uniqueName("secret"))@example.com"
            try await PostgresFixture.withTable(client, columns: "id bigint PRIMARY KEY, email text NOT NULL") {
                table in
                try await client.execute(
                    "ALTER TABLE \(unescaped: table) ADD CONSTRAINT \(unescaped: table)_email_key UNIQUE (email)")
                try await client.execute("INSERT INTO \(unescaped: table) VALUES (1, \(email))")
                let error = try await #require(throws: PostgresError.self) {
                    try await client.execute("INSERT INTO \(unescaped: table) VALUES (2, \(email))")
                }
                #expect(error.sqlState == SQLState.uniqueViolation)
                #expect(error.source == .server)
                #expect(error.severity == "ERROR")
                #expect(error.constraint == "\(table)_email_key")
                #expect(error.table == table)
                #expect(error.isRetryable == false)
                #expect(error.detail?.contains(email) == true)
                #expect(error.query?.contains("$1") == true)
                #expect(error.query?.contains(email) == false)

                #expect(error.description.contains("23505"))
                #expect(error.description.contains(email) == false)
                #expect(error.debugDescription.contains(email))
                #expect(error.debugDescription.contains("\(table)_email_key"))
                #expect(error.debugDescription.contains("INSERT INTO"))

                let primaryKey = try await #require(throws: PostgresError.self) {
                    try await client.execute("INSERT INTO \(unescaped: table) VALUES (1, 'other')")
                }
                #expect(primaryKey.sqlState == SQLState.uniqueViolation)
                #expect(primaryKey.constraint == "\(table)_pkey")

                let count = try await client.query("SELECT count(*) FROM \(unescaped: table)")
                    .single().decode(Int64.self, at: 0)
                #expect(count == 1)
            }
        }
    }

    /// Data exceptions quote the input in the primary message itself; `description` must not.
    static let quotingErrors: [(type: String, sqlState: String)] = [
        ("int", "22P02"),
        ("numeric(4,2)", "22P02"),
        ("timestamptz", "22007"),
        ("uuid", "22P02"),
    ]

    @Test("a data exception's description withholds the value it quotes", arguments: quotingErrors)
    func dataExceptionIsRedacted(_ type: String, _ sqlState: String) async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let secret = "card-4111-1111-\(IntegrationEnvironment.uniqueName("s"))"
            let error = try await #require(throws: PostgresError.self) {
                try await client.query("SELECT \(secret)::\(unescaped: type)")
            }
            #expect(error.sqlState == sqlState)
            #expect(error.message.contains(secret), "the server quoted it: \(error.message)")
            #expect(!error.description.contains(secret), "\(error.description)")
            #expect(!"\(error)".contains(secret))
            #expect(error.description.contains(sqlState))
            #expect(error.description.contains("value withheld"))
            #expect(error.debugDescription.contains(secret), "debugDescription keeps everything")
        }
    }

    static let serverErrors: [(sql: String, sqlState: String)] = [
        ("SELEC 1", "42601"),
        ("SELECT 1 / 0", "22012"),
        ("SELECT * FROM lh_no_such_table_anywhere", "42P01"),
        ("SELECT 'abc'::int", "22P02"),
        ("SELECT no_such_column FROM (SELECT 1) AS t", "42703"),
    ]

    @Test("server errors keep their SQLSTATE and leave the connection usable", arguments: serverErrors)
    func serverError(_ sql: String, _ sqlState: String) async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let pid = try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
            let error = try await #require(throws: PostgresError.self) {
                try await client.query(PostgresQuery(unsafeSQL: sql))
            }
            #expect(error.sqlState == sqlState)
            #expect(error.source == .server)
            #expect(error.isRetryable == false)
            #expect(error.description.hasPrefix("PostgreSQL error \(sqlState): "))
            let after = try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
            #expect(after == pid)  // same connection: an error reply does not cost the connection
        }
    }

    @Test("a check violation names its constraint")
    func checkViolation() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withTable(
                client, columns: "seats int NOT NULL CONSTRAINT seats_positive CHECK (seats > 0)"
            ) { table in
                let error = try await #require(throws: PostgresError.self) {
                    try await client.execute("INSERT INTO \(unescaped: table) VALUES (\(Int32(-1)))")
                }
                #expect(error.sqlState == SQLState.checkViolation)
                #expect(error.constraint == "seats_positive")
            }
        }
    }
}

/// `description` and `debugDescription` of hand-built errors (no server needed).
struct PostgresErrorDescriptionTests {
    @Test("description omits detail, hint and query; debugDescription has them")
    func redaction() {
        let error = PostgresError(
            source: .server, sqlState: "23505", message: "duplicate key value violates unique constraint \"b_key\"",
            severity: "ERROR", detail: "Key (email)=(alice@example.com) already exists.",
            hint: "hint with a value 4111-1111", constraint: "b_key", table: "bookings",
            query: "INSERT INTO bookings VALUES ($1)")
        #expect(error.description == "PostgreSQL error 23505: duplicate key value violates unique constraint \"b_key\"")
        for hidden in ["alice@example.com", "4111-1111", "INSERT INTO"] {
            #expect(error.description.contains(hidden) == false)
            #expect(error.debugDescription.contains(hidden))
        }
        #expect(error.debugDescription.contains("constraint: b_key"))
        #expect(error.debugDescription.contains("table: bookings"))
    }

    @Test(
        "retryable SQLSTATEs",
        arguments: [
            ("40001", true), ("40P01", true), ("55P03", true), ("08006", true), ("08001", true), ("23505", false),
            ("57014", false), ("22021", false), ("LHDEC", false),
        ])
    func retryable(_ sqlState: String, _ retryable: Bool) {
        let error = PostgresError(source: .server, sqlState: sqlState, message: "m")
        #expect(error.isRetryable == retryable)
        let transaction = PostgresTransactionError(bodyError: error)
        #expect(transaction.isRetryable == retryable)
    }

    @Test("a transaction error prefers the phase that decided the outcome")
    func transactionErrorPhases() {
        struct Custom: Error {}
        let deadlock = PostgresError(source: .server, sqlState: SQLState.deadlockDetected, message: "deadlock")
        let lost = PostgresError(source: .connection, sqlState: SQLState.connectionFailure, message: "lost")
        #expect(PostgresTransactionError(beginError: lost).postgresError?.sqlState == "08006")
        #expect(PostgresTransactionError(bodyError: deadlock, rollbackError: lost).postgresError?.sqlState == "40P01")
        #expect(PostgresTransactionError(bodyError: Custom(), rollbackError: lost).postgresError?.sqlState == "08006")
        #expect(PostgresTransactionError(bodyError: Custom()).isRetryable == false)
        #expect(PostgresTransactionError(commitError: lost).isRetryable)
        #expect(PostgresTransactionError(beginError: lost).description.hasPrefix("transaction could not begin"))
        #expect(PostgresTransactionError(commitError: lost).description.hasPrefix("transaction commit failed"))
        #expect(
            PostgresTransactionError(bodyError: deadlock, rollbackError: lost).description.contains(
                "rollback also failed"))
    }
}
