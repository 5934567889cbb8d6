import Foundation
import LeaseholdPostgres
import LeaseholdTesting
import Testing

/// Text and bytes travel as bind parameters and come back unchanged, whatever they contain.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable))
struct PostgresRoundTripTests {
    static let texts: [String] = [
        "🎉 Вы успешно записаны!",
        #"it's a "quoted" \ back\slash; -- not a comment"#,
        "'; DROP TABLE bookings; --",
        "$1 looks like a placeholder, ? too, and %s",
        "emoji 👩‍👩‍👧‍👦, combining é, CJK 予約, RTL שלום",
        "",
        "line\nbreaks\r\nand\ttabs",
        String(repeating: "Вы 🎉 ", count: 5_000),
    ]

    @Test("text parameters echo unchanged, with the server counting the same characters", arguments: texts)
    func textEcho(_ text: String) async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let row = try await client.query(
                "SELECT \(text)::text, char_length(\(text)::text), octet_length(\(text)::text)"
            ).single()
            let (echoed, characters, bytes) = try row.decode(String.self, Int64.self, Int64.self)
            #expect(echoed == text)
            #expect(characters == Int64(text.unicodeScalars.count))
            #expect(bytes == Int64(text.utf8.count))
        }
    }

    @Test("text stored in a table reads back unchanged")
    func textStored() async throws {
        try await PostgresFixture.withClient { client in
            try await PostgresFixture.withTable(client, columns: "id bigint PRIMARY KEY, body text NOT NULL") { table in
                for (index, text) in Self.texts.enumerated() {
                    let inserted = try await client.execute(
                        "INSERT INTO \(unescaped: table) (id, body) VALUES (\(index), \(text))")
                    #expect(inserted == 1)
                }
                let rows = try await client.query("SELECT id, body FROM \(unescaped: table) ORDER BY id")
                let stored = try rows.map { row in try row.decode(Int.self, String.self) }
                #expect(stored.map(\.0) == Array(Self.texts.indices))
                #expect(stored.map(\.1) == Self.texts)
                // The driver's bytes are what the server compares against, not a re-encoded copy.
                for (index, text) in Self.texts.enumerated() {
                    let matches = try await client.query(
                        "SELECT count(*) FROM \(unescaped: table) WHERE body = \(text) AND id = \(index)"
                    ).single().decode(Int64.self, at: 0)
                    #expect(matches == 1)
                }
            }
        }
    }

    static let blobs: [[UInt8]] = [
        [0],
        [0, 0, 0],
        [0x41, 0, 0x42, 0],
        Array(0...255),
        Array("🎉 Вы\u{0}успешно\u{0}записаны!".utf8),
        Array(#"'"\;--"#.utf8) + [0],
        [],
        (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ $0 >> 8) },
    ]

    @Test("bytea keeps every byte, NUL included", arguments: blobs)
    func byteaRoundTrip(_ bytes: [UInt8]) async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            try await PostgresFixture.withTable(client, columns: "id bigint PRIMARY KEY, payload bytea NOT NULL") {
                table in
                try await client.execute("INSERT INTO \(unescaped: table) VALUES (1, \(bytes))")
                let row = try await client.query(
                    "SELECT payload, octet_length(payload), payload = \(bytes) FROM \(unescaped: table) WHERE id = 1"
                ).single()
                let (stored, length, equal) = try row.decode([UInt8].self, Int64.self, Bool.self)
                #expect(stored == bytes)
                #expect(length == Int64(bytes.count))
                #expect(equal)
                #expect(try row.decode(Data.self, at: 0) == Data(bytes))
            }
        }
    }

    @Test("Data binds as bytea")
    func dataRoundTrip() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let data = Data([0, 1, 0, 0xFF, 0])
            let row = try await client.query("SELECT \(data), pg_typeof(\(data))::text").single()
            #expect(try row.decode(Data.self, String.self) == (data, "bytea"))
        }
    }

    static let textsWithNUL: [String] = ["\u{0}", "a\u{0}b", "trailing\u{0}", "🎉 Вы\u{0}успешно"]

    @Test("a NUL inside text is rejected by the server (22021), never truncated", arguments: textsWithNUL)
    func nulInTextIsRejected(_ text: String) async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let echo = try await #require(throws: PostgresError.self) {
                try await client.query("SELECT \(text)::text")
            }
            #expect(echo.sqlState == SQLState.characterNotInRepertoire)
            #expect(echo.source == .server)

            try await PostgresFixture.withTable(client, columns: "body text") { table in
                let insert = try await #require(throws: PostgresError.self) {
                    try await client.execute("INSERT INTO \(unescaped: table) (body) VALUES (\(text))")
                }
                #expect(insert.sqlState == SQLState.characterNotInRepertoire)
                let count = try await client.query("SELECT count(*) FROM \(unescaped: table)")
                    .single().decode(Int64.self, at: 0)
                #expect(count == 0)
            }
            // The connection is still good after the rejection.
            let after = try await client.query("SELECT \("still fine")::text").single().decode(String.self, at: 0)
            #expect(after == "still fine")
        }
    }

    @Test("nil optionals bind as NULL")
    func optionalBindsNull() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let missingText: String? = nil
            let missingNumber: Int64? = nil
            let present: Int64? = 7
            let row = try await client.query(
                "SELECT \(missingText) IS NULL, \(missingNumber) IS NULL, \(present)"
            ).single()
            let (textIsNull, numberIsNull, value) = try row.decode(Bool.self, Bool.self, Int64?.self)
            #expect(textIsNull)
            #expect(numberIsNull)
            #expect(value == 7)
        }
    }

    @Test("simpleQuery runs several statements in one string; its text results are never misread")
    func simpleQueryRunsScripts() async throws {
        try await PostgresFixture.withClient(size: 1) { client in
            let table = IntegrationEnvironment.uniqueName("lh_test")
            let last = try await client.withConnection { connection in
                try await connection.simpleQuery(
                    """
                    CREATE TABLE \(table) (id int);
                    INSERT INTO \(table) VALUES (1), (2), (3);
                    SELECT sum(id) FROM \(table);
                    """)
            }
            try await client.query("DROP TABLE \(unescaped: table)")
            // The simple-query protocol answers in text: readable as the server's text, and refused
            // (not misread as binary) by typed decoders.
            let cell = try last.single()
            #expect(try cell.decode(String.self, at: 0) == "6")
            let error = #expect(throws: PostgresError.self) { try cell.decode(Int64.self, at: 0) }
            #expect(error?.sqlState == SQLState.clientDecodingFailure)
        }
    }
}
