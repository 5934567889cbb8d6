import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Keys and values are binary-safe in both directions: NUL bytes, quotes and non-ASCII survive.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable))
struct RedisRoundTripTests {
    static let values: [[UInt8]] = [
        [0],
        [0, 0, 0],
        [0x41, 0, 0x42, 0],
        Array(0...255),
        Array("🎉 Вы успешно записаны!".utf8),
        Array("🎉 Вы\u{0}успешно\u{0}записаны!".utf8),
        Array(#"' " \ ; -- $1 %s \r\n"#.utf8) + [0, 13, 10],
        Array("*3\r\n$3\r\nSET\r\n".utf8),  // RESP framing inside a value is just bytes
        [],
        (0..<1_048_576).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) },
    ]

    @Test("SET/GET keeps every byte of the value", arguments: values)
    func valueRoundTrip(_ value: [UInt8]) async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let key = prefix + "value"
            let set = try await client.send("SET", key, value)
            #expect(set == .status("OK"))
            #expect(try await client.send("GET", key) == .bulk(value))
            #expect(try await client.send("STRLEN", key) == .integer(Int64(value.count)))
        }
    }

    static let keySuffixes: [[UInt8]] = [
        [0],
        Array("a".utf8) + [0] + Array("b".utf8),
        Array(#"'quoted' "double" \back\slash; -- comment"#.utf8),
        Array("Вы успешно записаны 🎉".utf8),
        Array("spaces and\ttabs\r\nnewlines".utf8) + [0],
    ]

    @Test("keys with NUL, quotes and non-ASCII are distinct, exact keys", arguments: keySuffixes)
    func keyRoundTrip(_ suffix: [UInt8]) async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let key = Array(prefix.utf8) + suffix
            let value = Array("value of ".utf8) + suffix
            try await client.send("SET", key, value)
            #expect(try await client.send("GET", key) == .bulk(value))
            #expect(try await client.send("EXISTS", key) == .integer(1))
            // The key is not confused with its prefix up to the first NUL.
            let truncated = Array(key.prefix { $0 != 0 })
            if truncated.count < key.count {
                #expect(try await client.send("EXISTS", truncated) == .integer(0))
            }
            // The server hands the exact key bytes back.
            let scan = try await client.send("SCAN", "0", "MATCH", prefix + "*", "COUNT", 1000)
            var cursor = scan.array?.first?.string ?? "0"
            var keys = scan.array?.last?.array?.compactMap(\.bytes) ?? []
            while cursor != "0" {
                let next = try await client.send("SCAN", cursor, "MATCH", prefix + "*", "COUNT", 1000)
                cursor = next.array?.first?.string ?? "0"
                keys += next.array?.last?.array?.compactMap(\.bytes) ?? []
            }
            #expect(keys == [key])
            #expect(try await client.send("DEL", key) == .integer(1))
            #expect(try await client.send("GET", key) == .null)
        }
    }

    @Test("reply types: status, integer, bulk, nil and nested arrays")
    func replyTypes() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let list = prefix + "list"
            #expect(try await client.send("PING") == .status("PONG"))
            #expect(try await client.send("RPUSH", list, "a", [0, 1], "Вы") == .integer(3))
            #expect(
                try await client.send("LRANGE", list, 0, -1)
                    == .array([.bulk(Array("a".utf8)), .bulk([0, 1]), .bulk(Array("Вы".utf8))]))
            #expect(try await client.send("LRANGE", prefix + "missing", 0, -1) == .array([]))
            #expect(try await client.send("GET", prefix + "missing") == .null)
            #expect(try await client.send("INCRBY", prefix + "n", Int64.max - 1) == .integer(Int64.max - 1))
            #expect(try await client.send("INCRBY", prefix + "m", -5).int == -5)

            let hash = prefix + "hash"
            try await client.send("HSET", hash, "field", "🎉")
            let stream = prefix + "stream"
            let id = try await client.send("XADD", stream, "*", "k", [0, 0xFF])
            let entries = try await client.send("XRANGE", stream, "-", "+")
            #expect(entries == .array([.array([id, .array([.bulk(Array("k".utf8)), .bulk([0, 0xFF])])])]))
            #expect(try await client.send("HGET", hash, "field").string == "🎉")
        }
    }
}
