import LeaseholdRedis
import Testing

extension UnitTests {
    /// Key → slot, command keys, redirects and `CLUSTER SLOTS` parsing (no server needed; the
    /// integration suites check the same against a real cluster).
    struct RedisClusterSlotTests {
        @Test("CRC16 is the XMODEM variant: its check value, and the empty input")
        func crc16() {
            #expect(RedisClusterSlot.crc16(Array("123456789".utf8)) == 0x31C3)
            #expect(RedisClusterSlot.crc16([UInt8]()) == 0)
        }

        /// Slots `CLUSTER KEYSLOT` gave on Redis 7.0 for these keys.
        static let knownSlots: [(String, Int)] = [
            ("foo", 12182), ("bar", 5061), ("hello", 866), ("123456789", 12739), ("", 0),
            ("{user1000}.following", 3443), ("{user1000}.followers", 3443),
            ("foo{}{bar}", 8363),  // the first tag is empty: the whole key is hashed
            ("foo{{bar}}zap", 4015),  // hashes "{bar"
            ("foo{bar}{zap}", 5061),  // the first tag only: "bar"
            ("{}", 15257),  // empty tag: whole key
        ]

        @Test("keys hash to the slots Redis gives them", arguments: knownSlots)
        func knownSlot(_ key: String, _ slot: Int) {
            #expect(RedisClusterSlot.slot(for: key) == slot)
        }

        @Test(
            "a hash tag is the text between the first { and the first } after it, when not empty",
            arguments: [
                ("lh:{bookings:3}:stream", "bookings:3"), ("lh:{bookings:3}:retry", "bookings:3"),
                ("a{b}c{d}", "b"), ("a{{b}}", "{b"), ("a{}b{c}", "a{}b{c}"), ("a}b{c", "a}b{c"), ("a{bc", "a{bc"),
                ("{", "{"), ("}{x}", "x"), ("plain", "plain"),
            ])
        func hashTag(_ key: String, _ hashed: String) {
            #expect(Array(RedisClusterSlot.hashedPart(of: Array(key.utf8))) == Array(hashed.utf8))
            #expect(RedisClusterSlot.slot(for: key) == RedisClusterSlot.slot(for: hashed))
        }

        @Test("keys sharing a hash tag share a slot; slots stay in 0..<16384")
        func sharedTag() {
            let slot = RedisClusterSlot.slot(for: "lh:{bookings:3}:stream")
            for suffix in ["retry", "lease:abc", "result:9", "{other}"] {
                #expect(RedisClusterSlot.slot(for: "lh:{bookings:3}:" + suffix) == slot)
            }
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<1000 {
                let key = (0..<Int.random(in: 0..<40, using: &generator)).map { _ in UInt8.random(in: 0...255) }
                #expect((0..<RedisClusterSlot.count).contains(RedisClusterSlot.slot(forKeyBytes: key)))
            }
        }

        static let commandKeys: [([String], [String])] = [
            (["GET", "k"], ["k"]),
            (["set", "k", "v", "PX", "100"], ["k"]),
            (["PING"], []),
            (["CLUSTER", "SLOTS"], []),
            (["DEL", "a", "b", "c"], ["a", "b", "c"]),
            (["MSET", "a", "1", "b", "2"], ["a", "b"]),
            (["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"], ["s"]),
            (["XINFO", "GROUPS", "s"], ["s"]),
            (["EVALSHA", "abc", "2", "k1", "k2", "arg"], ["k1", "k2"]),
            (["EVAL", "return 1", "0", "arg"], []),
            (
                ["XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "BLOCK", "5", "STREAMS", "s1", "s2", ">", ">"],
                ["s1", "s2"]
            ),
            (["XREADGROUP", "GROUP", "streams", "c", "STREAMS", "s1", ">"], ["s1"]),
            (["XREAD", "STREAMS", "s", "0"], ["s"]),
            (["BLPOP", "a", "b", "5"], ["a", "b"]),
            (["RENAME", "a", "b"], ["a", "b"]),
        ]

        @Test("the keys of known commands", arguments: commandKeys)
        func keys(_ command: [String], _ keys: [String]) throws {
            #expect(try RedisClusterKeys.keys(of: RedisCommand(command)) == keys.map { Array($0.utf8) })
        }

        @Test(
            "unknown commands and malformed key positions are refused, never guessed",
            arguments: [
                ["FLUSHALL"], ["WAIT", "1", "0"], [], ["GET"], ["EVAL", "return 1", "2", "k1"], ["EVAL", "x", "n"],
                ["XREAD", "STREAMS", "a", "b", "0"], ["XREAD", "COUNT", "1"], ["MSET", "a"],
            ])
        func unknownKeys(_ command: [String]) {
            let error = #expect(throws: RedisError.self) { try RedisClusterKeys.keys(of: RedisCommand(command)) }
            #expect(error?.source == .client)
            #expect(error?.code == .invalidInput)
        }

        @Test("keys in different slots are refused as CROSSSLOT by the client")
        func crossSlot() throws {
            #expect(try RedisClusterKeys.slot(of: [], command: "PING") == nil)
            let tagged = ["lh:{x}:a", "lh:{x}:b"].map { Array($0.utf8) }
            #expect(try RedisClusterKeys.slot(of: tagged, command: "DEL") == RedisClusterSlot.slot(for: "x"))
            let error = #expect(throws: RedisError.self) {
                try RedisClusterKeys.slot(of: [Array("foo".utf8), Array("bar".utf8)], command: "DEL")
            }
            #expect(error?.source == .client)
            #expect(error?.code == .crossSlot)
            #expect(error?.command == "DEL")
            #expect(error?.message.contains("12182") == true && error?.message.contains("5061") == true)
        }

        @Test("MOVED and ASK replies name the slot and the node; an empty host is the answering node's")
        func redirects() {
            let from = RedisNodeAddress(host: "10.0.0.1", port: 7000)
            #expect(
                RedisClusterRedirect(RedisError(reply: "MOVED 3999 127.0.0.1:6381"), from: from)
                    == RedisClusterRedirect(
                        kind: .moved, slot: 3999, node: RedisNodeAddress(host: "127.0.0.1", port: 6381))
            )
            #expect(
                RedisClusterRedirect(RedisError(reply: "ASK 0 cache-2.internal:7001"), from: from)
                    == RedisClusterRedirect(
                        kind: .ask, slot: 0, node: RedisNodeAddress(host: "cache-2.internal", port: 7001)))
            #expect(
                RedisClusterRedirect(RedisError(reply: "MOVED 16383 :7002"), from: from)?.node
                    == RedisNodeAddress(host: "10.0.0.1", port: 7002))
            #expect(
                RedisClusterRedirect(RedisError(reply: "MOVED 1 ::1:7003"), from: from)?.node
                    == RedisNodeAddress(host: "::1", port: 7003))
            for reply in [
                "MOVED", "MOVED 16384 a:1", "MOVED x a:1", "ASK 1 a", "ASK 1 a:0", "ERR MOVED 1 a:1", "TRYAGAIN",
            ] {
                #expect(RedisClusterRedirect(RedisError(reply: reply), from: from) == nil, "\(reply)")
            }
            let connection = RedisError(source: .connection, code: .moved, message: "MOVED 1 a:1")
            #expect(RedisClusterRedirect(connection, from: from) == nil)
        }

        /// What nodes started with `cluster-announce-hostname` and `cluster-preferred-endpoint-type
        /// hostname` (Redis 7; Compose/redis-cluster.yaml) answer: the host name first, the address
        /// only in the metadata, which is not used.
        @Test("CLUSTER SLOTS and MOVED in host-name form name nodes by host name")
        func hostNames() throws {
            func node(_ host: String, _ id: String, ip: String) -> RedisValue {
                .array([
                    .bulk(Array(host.utf8)), .integer(6379), .bulk(Array(id.utf8)),
                    .array([.bulk(Array("ip".utf8)), .bulk(Array(ip.utf8))]),
                ])
            }
            let reply = RedisValue.array([
                .array([
                    .integer(0), .integer(8191), node("redis", "a", ip: "172.28.0.11"),
                    node("redis-4", "d", ip: "172.28.0.14"),
                ]),
                .array([.integer(8192), .integer(16383), node("redis-2", "b", ip: "172.28.0.12")]),
            ])
            let map = try RedisClusterMap(
                clusterSlotsReply: reply, queried: RedisNodeAddress(host: "172.28.0.13", port: 6379))
            #expect(map.master(forSlot: 0) == RedisNodeAddress(host: "redis", port: 6379))
            #expect(map.ranges[0].replicas == [RedisNodeAddress(host: "redis-4", port: 6379)])
            #expect(map.master(forSlot: 16383) == RedisNodeAddress(host: "redis-2", port: 6379))
            #expect(map.coversEverySlot)
            let from = RedisNodeAddress(host: "redis", port: 6379)
            #expect(
                RedisClusterRedirect(RedisError(reply: "MOVED 8192 redis-2:6379"), from: from)
                    == RedisClusterRedirect(
                        kind: .moved, slot: 8192, node: RedisNodeAddress(host: "redis-2", port: 6379)))
        }

        @Test("CLUSTERDOWN and TRYAGAIN are retryable; MOVED, ASK and CROSSSLOT are not")
        func retryableClusterErrors() {
            #expect(RedisError(reply: "CLUSTERDOWN The cluster is down").isRetryable)
            #expect(RedisError(reply: "CLUSTERDOWN Hash slot not served").code == .clusterDown)
            #expect(RedisError(reply: "TRYAGAIN Multiple keys request during rehashing of slot").isRetryable)
            #expect(!RedisError(reply: "MOVED 3999 127.0.0.1:6381").isRetryable)
            #expect(!RedisError(reply: "ASK 3999 127.0.0.1:6381").isRetryable)
            #expect(!RedisError(reply: "CROSSSLOT Keys in request don't hash to the same slot").isRetryable)
        }

        @Test("CLUSTER SLOTS replies become a slot map; NULL and empty hosts are the queried node's, ? is left out")
        func clusterSlotsMap() throws {
            func node(_ host: RedisValue, _ port: Int64, _ id: String) -> RedisValue {
                .array([host, .integer(port), .bulk(Array(id.utf8)), .array([])])
            }
            let reply = RedisValue.array([
                .array([
                    .integer(0), .integer(5460), node(.bulk(Array("10.0.0.1".utf8)), 7000, "a"), node(.null, 7003, "d"),
                ]),
                .array([.integer(5461), .integer(10922), node(.bulk([]), 7001, "b")]),
                .array([.integer(10923), .integer(16382), node(.bulk(Array("?".utf8)), 7002, "c")]),
                .array([
                    .integer(16383), .integer(16383), node(.bulk(Array("10.0.0.9".utf8)), 7009, "x"),
                    node(.bulk(Array("?".utf8)), 1, "y"),
                ]),
            ])
            let queried = RedisNodeAddress(host: "10.0.0.5", port: 7005)
            let map = try RedisClusterMap(clusterSlotsReply: reply, queried: queried)
            let first = RedisNodeAddress(host: "10.0.0.1", port: 7000)
            let second = RedisNodeAddress(host: "10.0.0.5", port: 7001)
            let last = RedisNodeAddress(host: "10.0.0.9", port: 7009)
            #expect(map.master(forSlot: 0) == first)
            #expect(map.master(forSlot: 5460) == first)
            #expect(map.ranges[0].replicas == [RedisNodeAddress(host: "10.0.0.5", port: 7003)])
            #expect(map.master(forSlot: 5461) == second)
            #expect(map.master(forSlot: 10923) == nil)
            #expect(map.master(forSlot: 16383) == last)
            #expect(map.ranges[2].replicas.isEmpty)
            #expect(!map.coversEverySlot)
            #expect(map.masters == [first, second, last])
            #expect(map.nodes == [first, second, last, RedisNodeAddress(host: "10.0.0.5", port: 7003)])

            let moved = map.moving(slot: 10923, to: second)
            #expect(moved.master(forSlot: 10923) == second)
            #expect(moved.master(forSlot: 10924) == nil)
            #expect(map.master(forSlot: 10923) == nil, "a map is a value")

            for bad: RedisValue in [
                .integer(1), .array([.integer(1)]), .array([.array([.integer(5), .integer(1), node(.null, 1, "a")])]),
                .array([.array([.integer(0), .integer(16384), node(.null, 1, "a")])]),
                .array([.array([.integer(0), .integer(1), .array([.bulk([])])])]),
            ] {
                #expect(throws: RedisError.self) { try RedisClusterMap(clusterSlotsReply: bad, queried: queried) }
            }
        }
    }
}
