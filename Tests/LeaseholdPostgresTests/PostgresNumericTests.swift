import Foundation
import LeaseholdPostgres
import LeaseholdTesting
import Testing

/// NUMERIC ↔ `Decimal` against the server: exact in both directions, never through a float.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable))
struct PostgresNumericTests {
    static let values = [
        "1990.10", "-0.0001", "12345678901234567890.123456789", "0", "0.00000123", "-0.00000123", "0.1",
        "10000", "100000000", "9999.9999", "1.0000", "-12345678901234567890123456789012345678",
        "0.12345678901234567890123456789012345678", "3.14159265358979323846264338327950288",
    ]

    @Test("server NUMERIC values decode to exactly the Decimal of their text", arguments: values)
    func decodesServerValues(_ text: String) async throws {
        let expected = try #require(Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")))
        try await PostgresFixture.withClient(size: 1) { client in
            let row = try await client.query("SELECT \(text)::numeric, (\(text)::numeric)::text").single()
            let (decoded, serverText) = try row.decode(Decimal.self, String.self)
            #expect(decoded == expected)
            #expect(serverText == text)  // the server keeps the display scale, so this is the input
        }
    }

    @Test("numeric(12,2) keeps its scale: '1990.10' decodes to Decimal(string: \"1990.10\")")
    func fixedScale() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let row = try await client.query("SELECT '1990.10'::numeric(12,2), '5'::numeric(12,2)").single()
            let (price, whole) = try row.decode(Decimal.self, Decimal.self)
            #expect(price == Decimal(string: "1990.10"))
            #expect(price != Decimal(string: "1990.11"))
            #expect(whole == 5)
        }
    }

    @Test("Decimal parameters round-trip exactly through a numeric column", arguments: values)
    func parameterRoundTrip(_ text: String) async throws {
        let value = try #require(Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")))
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withTable(client, columns: "id int PRIMARY KEY, amount numeric NOT NULL") {
                table in
                try await client.execute("INSERT INTO \(unescaped: table) VALUES (1, \(value))")
                let row = try await client.query(
                    "SELECT amount, amount = \(text)::numeric FROM \(unescaped: table) WHERE id = 1"
                ).single()
                let (stored, equalOnServer) = try row.decode(Decimal.self, Bool.self)
                #expect(stored == value)
                #expect(equalOnServer)
            }
        }
    }

    @Test("a Decimal parameter is rounded by numeric(12,2) only as the column says")
    func parameterIntoFixedScale() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withTable(client, columns: "amount numeric(12,2) NOT NULL") { table in
                let price = try #require(Decimal(string: "1990.10"))
                try await client.execute("INSERT INTO \(unescaped: table) VALUES (\(price))")
                let row = try await client.query("SELECT amount, amount::text FROM \(unescaped: table)").single()
                #expect(try row.decode(Decimal.self, String.self) == (price, "1990.10"))
            }
        }
    }

    @Test("several text-format parameters in one statement stay separate")
    func severalDecimalParameters() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let a = try #require(Decimal(string: "1990.10"))
            let b = try #require(Decimal(string: "-0.0001"))
            let c = try #require(Decimal(string: "12345678901234567890.123456789"))
            let row = try await client.query(
                "SELECT \(a), \(b), \(c), \(a) + \(b), \("after")::text, \(Int64(7))"
            ).single()
            let decoded = try row.decode(
                Decimal.self, Decimal.self, Decimal.self, Decimal.self, String.self, Int64.self)
            #expect(decoded.0 == a)
            #expect(decoded.1 == b)
            #expect(decoded.2 == c)
            #expect(decoded.3 == a + b)
            #expect(decoded.4 == "after")
            #expect(decoded.5 == 7)
        }
    }

    @Test("sums are exact where a Double would drift")
    func exactSum() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let tenth = try #require(Decimal(string: "0.1"))
            let sum = try await client.query("SELECT sum(\(tenth)) FROM generate_series(1, 10)")
                .single().decode(Decimal.self, at: 0)
            #expect(sum == 1)
        }
    }

    @Test(
        "values a Decimal cannot hold exactly are refused, not rounded",
        arguments: [
            "'NaN'::numeric", "'Infinity'::numeric", "'-Infinity'::numeric", "1e40::numeric",
            "0.1234567890123456789012345678901234567891::numeric",
        ])
    func refusesUnrepresentable(_ expression: String) async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let row = try await client.query(PostgresQuery(unsafeSQL: "SELECT \(expression) AS n")).single()
            let error = try #require(throws: PostgresError.self) { try row.decode(Decimal.self, at: 0) }
            #expect(error.source == .client)
            #expect(error.sqlState == SQLState.clientDecodingFailure)
        }
    }
}
