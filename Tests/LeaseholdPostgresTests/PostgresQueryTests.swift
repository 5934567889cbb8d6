import Foundation
import LeaseholdPostgres
import Testing

extension UnitTests {
    /// String interpolation turns values into `$n` binds, never into SQL text (no server needed).
    struct PostgresQueryTests {
        @Test("every interpolated value becomes the next $n bind")
        func interpolation() {
            let id: Int64 = 42
            let name = "'; DROP TABLE bookings; --"
            let missing: String? = nil
            let query: PostgresQuery =
                "SELECT * FROM bookings WHERE id = \(id) AND name = \(name) AND note = \(missing)"
            #expect(query.sql == "SELECT * FROM bookings WHERE id = $1 AND name = $2 AND note = $3")
            #expect(query.binds.count == 3)
            #expect(query.binds[0] == id.postgresBind)
            #expect(query.binds[1].type == .text)
            #expect(query.binds[1].bytes == Array(name.utf8))
            #expect(query.binds[2] == .null(type: .text))
            #expect(query.sql.contains("DROP") == false)
        }

        @Test("unescaped text is spliced as SQL and adds no bind")
        func unescaped() {
            let table = "time_slots"
            let query: PostgresQuery = "SELECT id FROM \(unescaped: table) WHERE id = \(Int32(7))"
            #expect(query.sql == "SELECT id FROM time_slots WHERE id = $1")
            #expect(query.binds == [Int32(7).postgresBind])
        }

        @Test("binary encodings are big-endian and exact")
        func encodings() throws {
            #expect(Int64(1).postgresBind.bytes == [0, 0, 0, 0, 0, 0, 0, 1])
            #expect(Int32(-2).postgresBind.bytes == [0xFF, 0xFF, 0xFF, 0xFE])
            #expect(Int(258).postgresBind == Int64(258).postgresBind)
            #expect(true.postgresBind.bytes == [1])
            #expect(Double(1).postgresBind.bytes == [0x3F, 0xF0, 0, 0, 0, 0, 0, 0])
            let uuid = try #require(UUID(uuidString: "00112233-4455-6677-8899-AABBCCDDEEFF"))
            #expect(
                uuid.postgresBind.bytes == [
                    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB,
                    0xCC, 0xDD, 0xEE, 0xFF,
                ])
            #expect(PostgresJSONB("{}").postgresBind.bytes == [1, 0x7B, 0x7D])
            #expect(Date(timeIntervalSince1970: 946_684_800).postgresBind.bytes == [0, 0, 0, 0, 0, 0, 0, 0])
            #expect(PostgresInt8Array([]).postgresBind.bytes?.count == 12)
        }
    }
}
