import Foundation
import LeaseholdPostgres
import LeaseholdTesting
import Testing

/// Binary result cells decode into the Swift types the wrapper supports, and refuse the rest.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable))
struct PostgresDecodingTests {
    @Test("Int64 and Int echo at the edges of their range", arguments: [0, 1, -1, 1 << 40, Int64.max, Int64.min])
    func int64Echo(_ value: Int64) async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let row = try await client.query("SELECT \(value), \(value)::text, pg_typeof(\(value))::text").single()
            let (decoded, text, type) = try row.decode(Int64.self, String.self, String.self)
            #expect(decoded == value)
            #expect(text == String(value))
            #expect(type == "bigint")
            #expect(try row.decode(Int.self, at: 0) == Int(value))
        }
    }

    @Test("Int32 echoes as int4", arguments: [Int32.min, -1, 0, Int32.max])
    func int32Echo(_ value: Int32) async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let row = try await client.query("SELECT \(value), pg_typeof(\(value))::text").single()
            #expect(try row.decode(Int32.self, String.self) == (value, "integer"))
            #expect(try row.decode(Int64.self, at: 0) == Int64(value))
        }
    }

    @Test("smallint, integer and oid columns widen to Int64; int8 narrows to Int32 only when it fits")
    func integerWidths() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let row = try await client.query(
                "SELECT (-12345)::int2, 2147483647::int4, 4294967295::oid, 42::int8, 3000000000::int8"
            ).single()
            let (small, regular, oid, wide) = try row.decode(Int64.self, Int64.self, Int64.self, Int32.self)
            #expect(small == -12345)
            #expect(regular == 2_147_483_647)
            #expect(oid == 4_294_967_295)
            #expect(wide == 42)
            let error = #expect(throws: PostgresError.self) { try row.decode(Int32.self, at: 4) }
            #expect(error?.source == .client)
            #expect(error?.sqlState == SQLState.clientDecodingFailure)
        }
    }

    @Test("Bool echoes, and server comparisons decode", arguments: [true, false])
    func boolEcho(_ value: Bool) async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let row = try await client.query("SELECT \(value), NOT \(value), \(value)::text").single()
            let (decoded, negated, text) = try row.decode(Bool.self, Bool.self, String.self)
            #expect(decoded == value)
            #expect(negated == !value)
            #expect(text == String(value))
        }
    }

    @Test(
        "Double echoes bit for bit",
        arguments: [0.0, -0.0, 1.5, -2.25, Double.pi, 1e300, -1e-300, .greatestFiniteMagnitude, .infinity])
    func doubleEcho(_ value: Double) async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let row = try await client.query("SELECT \(value), -\(value), \(value)::text").single()
            let (decoded, negated, text) = try row.decode(Double.self, Double.self, String.self)
            #expect(decoded.bitPattern == value.bitPattern)
            #expect(negated == -value)
            #expect(Double(text.replacingOccurrences(of: "Infinity", with: "inf")) == value)
        }
    }

    @Test("NaN and float4 decode as Double")
    func doubleSpecials() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let row = try await client.query("SELECT 'NaN'::float8, 1.5::float4, (-0.1)::float4").single()
            let (nan, single, inexact) = try row.decode(Double.self, Double.self, Double.self)
            #expect(nan.isNaN)
            #expect(single == 1.5)
            #expect(inexact == Double(Float(-0.1)))
        }
    }

    @Test("textual column types decode as String")
    func textualTypes() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let row = try await client.query(
                "SELECT 'Вы'::varchar(10), 'ab'::char(4), 'a_name'::name, 'x'::\"char\", '{\"k\": 1}'::json"
            ).single()
            let decoded = try row.decode(String.self, String.self, String.self, String.self, String.self)
            #expect(decoded.0 == "Вы")
            #expect(decoded.1 == "ab  ")  // char(n) is blank-padded by the server
            #expect(decoded.2 == "a_name")
            #expect(decoded.3 == "x")
            #expect(decoded.4 == #"{"k": 1}"#)
        }
    }

    @Test("NULL decodes as nil into Optional and is refused by non-optional types")
    func nullHandling() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let row = try await client.query("SELECT NULL::int8, 5::int8, NULL::text, NULL::bytea").single()
            let (missing, present, text, bytes) = try row.decode(Int64?.self, Int64?.self, String?.self, [UInt8]?.self)
            #expect(missing == nil)
            #expect(present == 5)
            #expect(text == nil)
            #expect(bytes == nil)
            let error = #expect(throws: PostgresError.self) { try row.decode(Int64.self, at: 0) }
            #expect(error?.sqlState == SQLState.clientDecodingFailure)
            #expect(error?.message.contains("NULL") == true)
        }
    }

    @Test("UUID echoes and decodes server-generated values")
    func uuid() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let value = UUID()
            let row = try await client.query("SELECT \(value), \(value)::text").single()
            let (decoded, text) = try row.decode(UUID.self, String.self)
            #expect(decoded == value)
            #expect(text == value.uuidString.lowercased())

            let literal = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
            let parsed = try await client.query("SELECT \(literal)::uuid").single().decode(UUID.self, at: 0)
            #expect(parsed == UUID(uuidString: literal))
        }
    }

    @Test("jsonb binds and decodes as the server's normalised text")
    func jsonb() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let document = PostgresJSONB(#"{"b": [1, 2],   "a": "🎉 Вы успешно записаны!", "q": "'\"\\"}"#)
            let row = try await client.query(
                "SELECT \(document), \(document)::text, \(document)->>'a', \(document)->>'q', jsonb_typeof(\(document))"
            ).single()
            let (decoded, serverText, field, quoted, kind) = try row.decode(
                PostgresJSONB.self, String.self, String.self, String.self, String.self)
            #expect(decoded.text == serverText)
            #expect(field == "🎉 Вы успешно записаны!")
            #expect(quoted == #"'"\"#)
            #expect(kind == "object")
            #expect(try row.decode(String.self, at: 0) == serverText)

            let invalid = try await #require(throws: PostgresError.self) {
                try await client.query("SELECT \(PostgresJSONB("{not json"))")
            }
            #expect(invalid.sqlState == "22P02")
        }
    }

    @Test("Date round-trips through timestamptz to the microsecond")
    func dateRoundTrip() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let now = Date()
            let row = try await client.query(
                "SELECT \(now), \(now) - now() BETWEEN interval '-1 minute' AND interval '1 minute'"
            ).single()
            let (decoded, closeToServerClock) = try row.decode(Date.self, Bool.self)
            #expect(abs(decoded.timeIntervalSince(now)) <= 1e-6)
            #expect(closeToServerClock)
        }
    }

    @Test("timestamptz literals decode to the same instant, whatever the session time zone")
    func timestampLiterals() async throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        let components = DateComponents(year: 2024, month: 2, day: 29, hour: 12, minute: 34, second: 56)
        let expected = try #require(calendar.date(from: components)).addingTimeInterval(0.789012)

        try await PostgresFixture.withClient(size: 1) { client in
            let decoded = try await client.withConnection { connection in
                try await connection.simpleQuery("SET TIME ZONE 'Asia/Kathmandu'")
                return try await connection.query(
                    """
                    SELECT '2024-02-29 12:34:56.789012+00'::timestamptz,
                           '2024-02-29 18:19:56.789012+05:45'::timestamptz,
                           '2024-02-29 12:34:56.789012'::timestamp,
                           'infinity'::timestamptz, '-infinity'::timestamptz
                    """
                ).single().decode(Date.self, Date.self, Date.self, Date.self, Date.self)
            }
            #expect(abs(decoded.0.timeIntervalSince(expected)) <= 1e-6)
            #expect(abs(decoded.1.timeIntervalSince(expected)) <= 1e-6)
            #expect(abs(decoded.2.timeIntervalSince(expected)) <= 1e-6)
            #expect(decoded.3 == .distantFuture)
            #expect(decoded.4 == .distantPast)

            let matches = try await client.query("SELECT \(expected) = '2024-02-29 12:34:56.789012+00'::timestamptz")
                .single().decode(Bool.self, at: 0)
            #expect(matches)
        }
    }

    @Test("PostgresInt8Array works with = ANY(...) and echoes")
    func int8ArrayAny() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withTable(client, columns: "id bigint PRIMARY KEY") { table in
                try await client.execute("INSERT INTO \(unescaped: table) SELECT generate_series(1, 20)")
                let wanted = PostgresInt8Array([3, 17, 5, 99, -1])
                let ids = try await client.query(
                    "SELECT id FROM \(unescaped: table) WHERE id = ANY(\(wanted)) ORDER BY id"
                ).map { try $0.decode(Int64.self, at: 0) }
                #expect(ids == [3, 5, 17])

                let none = try await client.query(
                    "SELECT id FROM \(unescaped: table) WHERE id = ANY(\(PostgresInt8Array([])))")
                #expect(none.isEmpty)
            }

            let values = PostgresInt8Array([1, -2, Int64.max, Int64.min, 0])
            let row = try await client.query(
                "SELECT \(values), cardinality(\(values)), \(PostgresInt8Array([])), ARRAY[7, 8]::int8[]"
            ).single()
            let (echoed, count, empty, literal) = try row.decode(
                PostgresInt8Array.self, Int64.self, PostgresInt8Array.self, PostgresInt8Array.self)
            #expect(echoed == values)
            #expect(count == 5)
            #expect(empty.values.isEmpty)
            #expect(literal.values == [7, 8])

            let withNull = try await client.query("SELECT ARRAY[1, NULL]::int8[]").single()
            let error = #expect(throws: PostgresError.self) { try withNull.decode(PostgresInt8Array.self, at: 0) }
            #expect(error?.sqlState == SQLState.clientDecodingFailure)
        }
    }

    @Test("variadic decode, decode by column name, and out-of-range columns")
    func rowAccess() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let rows = try await client.query("SELECT 1::int8 AS id, 'x' AS name, true AS flag, NULL::text AS note")
            #expect(rows.columns == ["id", "name", "flag", "note"])
            let row = try rows.single()
            let (id, name, flag, note) = try row.decode(Int64.self, String.self, Bool.self, String?.self)
            #expect(id == 1)
            #expect(name == "x")
            #expect(flag)
            #expect(note == nil)
            #expect(try row.decode(String.self, column: "name") == "x")

            let missingColumn = #expect(throws: PostgresError.self) { try row.decode(Int64.self, column: "nope") }
            #expect(missingColumn?.sqlState == SQLState.clientDecodingFailure)
            let tooMany = #expect(throws: PostgresError.self) {
                try row.decode(Int64.self, String.self, Bool.self, String?.self, Int64.self)
            }
            #expect(tooMany?.sqlState == SQLState.clientDecodingFailure)

            let empty = try await client.query("SELECT 1 WHERE false")
            let none = #expect(throws: PostgresError.self) { try empty.single() }
            #expect(none?.sqlState == SQLState.clientDecodingFailure)
        }
    }

    /// One column decoded into a type that does not match it.
    struct Mismatch: Sendable, CustomTestStringConvertible {
        var sql: String
        var typeName: String
        var decode: @Sendable (PostgresRow) throws -> Void
        var testDescription: String { "\(sql) as \(typeName)" }

        init<T: PostgresDecodable & SendableMetatype>(_ sql: String, as type: T.Type) {
            self.sql = sql
            self.typeName = "\(type)"
            self.decode = { row in _ = try row.decode(T.self, at: 0) }
        }
    }

    static let mismatches: [Mismatch] = [
        Mismatch("SELECT 'text'::text AS c", as: Int64.self),
        Mismatch("SELECT 1::int8 AS c", as: String.self),
        Mismatch("SELECT 1::int4 AS c", as: Bool.self),
        Mismatch("SELECT true AS c", as: Double.self),
        Mismatch("SELECT 1.5::numeric AS c", as: Int64.self),
        Mismatch("SELECT 'x'::text AS c", as: Decimal.self),
        Mismatch("SELECT 1::int8 AS c", as: UUID.self),
        Mismatch("SELECT 'today'::text AS c", as: Date.self),
        Mismatch("SELECT 1::int8 AS c", as: [UInt8].self),
        Mismatch("SELECT '\\x00'::bytea AS c", as: String.self),
        Mismatch("SELECT 1.5::float8 AS c", as: Int.self),
        Mismatch("SELECT 'x'::text AS c", as: PostgresInt8Array.self),
        Mismatch("SELECT ARRAY['a']::text[] AS c", as: PostgresInt8Array.self),
        Mismatch("SELECT 'x'::text AS c", as: Int64?.self),
    ]

    @Test("decoding into the wrong type throws a client error naming the column", arguments: mismatches)
    func wrongType(_ mismatch: Mismatch) async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let row = try await client.query(PostgresQuery(unsafeSQL: mismatch.sql)).single()
            let error = try #require(throws: PostgresError.self) { try mismatch.decode(row) }
            #expect(error.source == .client)
            #expect(error.sqlState == SQLState.clientDecodingFailure)
            #expect(error.message.contains("\"c\""))
        }
    }
}
