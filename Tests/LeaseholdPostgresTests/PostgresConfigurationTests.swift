import LeaseholdPostgres
import Testing

extension UnitTests {
    /// Passwords never reach logs: `redactedConnectionString` for both libpq forms, and connection
    /// errors (no server needed: they connect to a closed port).
    struct PostgresConfigurationTests {
        struct Redaction: Sendable, CustomTestStringConvertible {
            var input: String
            /// Pieces of the password, none of which may survive.
            var secrets: [String]
            /// Text that must survive, so operators can still tell where the connection went.
            var kept: [String]
            var testDescription: String { input }
        }

        static let redactions: [Redaction] = [
            Redaction(
                input: "postgres://app:s3cret@db.internal:5432/leasehold", secrets: ["s3cret"],
                kept: ["postgres://app:", "@db.internal:5432/leasehold"]),
            Redaction(
                input: "postgresql://app:s3cret@127.0.0.1/leasehold?sslmode=disable&application_name=x@y",
                secrets: ["s3cret"], kept: ["@127.0.0.1/leasehold", "sslmode=disable", "application_name=x@y"]),
            Redaction(
                input: "postgres://app@db.internal/leasehold?sslmode=disable&password=s3cret", secrets: ["s3cret"],
                kept: ["app@db.internal/leasehold", "sslmode=disable"]),
            Redaction(
                input: "postgres://:s3cret@db.internal/leasehold", secrets: ["s3cret"], kept: ["db.internal/leasehold"]),
            Redaction(
                input: "postgres://app:p%40ss%3Aword@db.internal/leasehold", secrets: ["p%40ss", "word"],
                kept: ["db.internal/leasehold"]),
            Redaction(
                input: "host=db.internal user=app password=s3cret dbname=leasehold", secrets: ["s3cret"],
                kept: ["host=db.internal", "user=app", "dbname=leasehold"]),
            Redaction(input: "password=s3cret", secrets: ["s3cret"], kept: []),
            Redaction(
                input: "host=db.internal password = s3cret dbname=leasehold", secrets: ["s3cret"],
                kept: ["host=db.internal", "dbname=leasehold"]),
            Redaction(
                input: "host=db.internal password='s3 cret phrase' dbname=leasehold",
                secrets: ["s3", "cret", "phrase"],
                kept: ["host=db.internal", "dbname=leasehold"]),
            Redaction(
                input: #"host=db.internal password='it\'s s3cret' user=app"#, secrets: ["it", "s3cret"],
                kept: ["host=db.internal", "user=app"]),
            Redaction(
                input: "host=db.internal\tpassword=s3cret\nuser=app", secrets: ["s3cret"],
                kept: ["host=db.internal", "user=app"]),
            Redaction(
                input: "postgres://app:s3cret@db1:5432,db2:5433/leasehold?target_session_attrs=read-write",
                secrets: ["s3cret"], kept: ["postgres://app:", "@db1:5432,db2:5433/leasehold", "target_session_attrs"]),
            Redaction(
                input: "host=db1,db2 port=5432,5433 password=s3cret dbname=leasehold", secrets: ["s3cret"],
                kept: ["host=db1,db2", "port=5432,5433", "dbname=leasehold"]),
        ]

        @Test("redactedConnectionString hides the password and keeps the rest", arguments: redactions)
        func redaction(_ case: Redaction) {
            let redacted = PostgresConfiguration(connectionString: `case`.input).redactedConnectionString
            for secret in `case`.secrets {
                #expect(redacted.contains(secret) == false, "\(redacted)")
            }
            #expect(redacted.contains("***"), "\(redacted)")
            for kept in `case`.kept {
                #expect(redacted.contains(kept), "\(redacted)")
            }
        }

        @Test(
            "strings without a password are unchanged",
            arguments: [
                "postgres://postgres@127.0.0.1:5432/leasehold", "postgresql://db.internal/leasehold?sslmode=require",
                "host=db.internal user=app dbname=leasehold", "",
            ])
        func noPassword(_ input: String) {
            #expect(PostgresConfiguration(connectionString: input).redactedConnectionString == input)
        }

        @Test("a failed connection reports the redacted string, never the password")
        func connectionErrorIsRedacted() async throws {
            // Port 1 on loopback: nothing listens there, so the connection is refused at once.
            let configuration = PostgresConfiguration(
                connectionString: "postgres://app:s3cret@127.0.0.1:1/leasehold", connectTimeoutSeconds: 2)
            let error = try await #require(throws: PostgresError.self) {
                try await PostgresClient.withConnection(to: configuration) { _ in }
            }
            #expect(error.source == .connection)
            #expect(error.sqlState == SQLState.unableToConnect)
            #expect(error.isRetryable)
            #expect(error.description.contains("s3cret") == false)
            #expect(error.debugDescription.contains("s3cret") == false)
            #expect(error.description.contains("app:***@127.0.0.1:1"))
        }

        @Test("defaults")
        func defaults() {
            let configuration = PostgresConfiguration()
            #expect(configuration.connectTimeoutSeconds > 0)
            #expect(configuration.connectionString.hasPrefix("postgres://"))
            #expect(configuration.applicationName == "leasehold")
            #expect(configuration.targetSessionAttributes == "read-write")
        }

        @Test("when every host of a multi-host string fails, the error names each on one line")
        func multiHostConnectionError() async throws {
            let configuration = PostgresConfiguration(
                connectionString: "postgres://app:s3cret@127.0.0.1:1,127.0.0.1:2/leasehold", connectTimeoutSeconds: 2)
            let error = try await #require(throws: PostgresError.self) {
                try await PostgresClient.withConnection(to: configuration) { _ in }
            }
            #expect(error.source == .connection)
            #expect(error.sqlState == SQLState.unableToConnect)
            #expect(error.description.contains("s3cret") == false)
            #expect(!error.message.contains("\n"), "\(error.message)")
            #expect(
                error.message.contains("port 1 failed") && error.message.contains("port 2 failed"), "\(error.message)")
        }
    }
}
