import LeaseholdLocalStack
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// ``RedisClusterClient`` against a real local cluster (3 masters,
/// no replicas): slots, routing, scripts, pipelines, a node list whose first node is dead, and
/// the reactor client's shared writes.
@Suite("Redis Cluster client", .enabled(if: LocalRedisCluster.isAvailable))
struct RedisClusterClientTests {
    @Test("the client's key slots are what CLUSTER KEYSLOT says, hash tags included")
    func keySlotsMatchTheServer() async throws {
        try await LocalRedisCluster.run { cluster in
            var keys: [[UInt8]] = [
                "", "{", "}", "{}", "{}{a}", "a{b}c", "a{{b}}", "a{}b{c}", "}{x}", "lh:{bookings:3}:stream",
                "lh:{bookings:3}:retry", "lh:stream:telegram", "lh:lease:abc", "123456789",
            ].map { Array($0.utf8) }
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<500 {
                var key = (0..<Int.random(in: 1..<24, using: &generator)).map { _ in UInt8.random(in: 0...255) }
                if Bool.random() { key.insert(UInt8(ascii: "{"), at: Int.random(in: 0...key.count)) }
                if Bool.random() { key.insert(UInt8(ascii: "}"), at: Int.random(in: 0...key.count)) }
                keys.append(key)
            }
            let replies = try await cluster.pipeline(
                to: cluster.nodes[0], keys.map { RedisCommand("CLUSTER", "KEYSLOT", $0) })
            for (key, reply) in zip(keys, replies) {
                #expect(reply.int.map(Int.init) == RedisClusterSlot.slot(forKeyBytes: key), "key \(key)")
            }
        }
    }

    @Test("every command reaches the master serving its key's slot", arguments: ClusterClientKind.allCases)
    func routing(_ kind: ClusterClientKind) async throws {
        try await LocalRedisCluster.run { cluster in
            // Every node in REDIS_URL's form, as a role would get it.
            try await RedisClusterClients.with(
                kind, configuration: try RedisConfiguration(url: cluster.url), connections: 2
            ) { client in
                let keys = (0..<120).map { "route:\($0)" }
                for key in keys { try await client.send("SET", key, "v-\(key)") }
                for key in keys { #expect(try await client.send("GET", key).string == "v-\(key)") }

                // Each key is on the node the cluster's own map names, and only there.
                let map = try await cluster.map()
                #expect(map.masters.count == 3)
                #expect(client.map.map { Self.sameOwners($0, map) } == true)
                var perNode: [RedisNodeAddress: Int] = [:]
                for key in keys {
                    let master = try #require(map.master(forSlot: RedisClusterSlot.slot(for: key)))
                    perNode[master, default: 0] += 1
                    #expect(try await cluster.send(to: master, "GET", key).string == "v-\(key)")
                }
                #expect(perNode.count == 3, "120 keys spread over every master")
                for master in map.masters {
                    #expect(try await cluster.send(to: master, "DBSIZE").int == Int64(perNode[master] ?? 0))
                }
                #expect(try await client.send("PING") == .status("PONG"))
                #expect(client.mapRefreshes == 1, "one map read, no redirects")
                #expect(client.isCluster, "batch operations split per hash slot")
            }
        }
    }

    @Test("a pipeline is split per node and its replies come back in order", arguments: ClusterClientKind.allCases)
    func pipeline(_ kind: ClusterClientKind) async throws {
        try await LocalRedisCluster.run { cluster in
            try await RedisClusterClients.with(kind, configuration: cluster.configuration) { client in
                let keys = (0..<60).map { "pipe:\($0)" }
                let sets = try await client.pipeline(keys.map { RedisCommand("SET", $0, "v-\($0)") })
                #expect(sets == Array(repeating: .status("OK"), count: keys.count))
                var commands = keys.map { RedisCommand("GET", $0) }
                commands.insert(RedisCommand("INCR", "pipe:0"), at: 10)  // an error reply, in place
                let replies = try await client.pipeline(commands)
                #expect(replies.count == commands.count)
                for (index, key) in keys.enumerated() {
                    #expect(replies[index < 10 ? index : index + 1].string == "v-\(key)")
                }
                guard case .error(let error) = replies[10] else {
                    Issue.record("INCR of a string answered \(replies[10])")
                    return
                }
                #expect(error.code == .err)
                #expect(try await client.pipeline([]) == [])
            }
        }
    }

    @Test(
        "a script over keys of one hash tag runs on their node; keys across slots are refused before sending",
        arguments: ClusterClientKind.allCases)
    func scripts(_ kind: ClusterClientKind) async throws {
        try await LocalRedisCluster.run { cluster in
            try await RedisClusterClients.with(kind, configuration: cluster.configuration) { client in
                let script = RedisScript(
                    "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); "
                        + "return redis.call('MGET', KEYS[1], KEYS[2])")
                // Three tags on three different masters: the script is loaded on each (NOSCRIPT, then LOAD).
                let map = try await cluster.map()
                var tags: [String] = []
                var seen: Set<RedisNodeAddress> = []
                for index in 0..<1000 where seen.count < 3 {
                    let tag = "bookings:\(index)"
                    if let master = map.master(forSlot: RedisClusterSlot.slot(for: tag)), seen.insert(master).inserted {
                        tags.append(tag)
                    }
                }
                #expect(tags.count == 3)
                for tag in tags {
                    let reply = try await client.evaluate(
                        script, keys: ["lh:{\(tag)}:stream", "lh:{\(tag)}:result"], arguments: ["v-\(tag)"])
                    #expect(reply == .array([.bulk(Array("v-\(tag)".utf8)), .bulk(Array("v-\(tag)".utf8))]))
                }

                let error = try await #require(throws: RedisError.self) {
                    try await client.evaluate(script, keys: ["lh:cross:a", "lh:cross:b"], arguments: ["x"])
                }
                #expect(error.source == .client)
                #expect(error.code == .crossSlot)
                #expect(!error.outcomeUnknown)
                for key in ["lh:cross:a", "lh:cross:b"] {
                    #expect(try await client.send("EXISTS", key) == .integer(0), "nothing was sent")
                }
                let multi = try await #require(throws: RedisError.self) { try await client.send("DEL", "foo", "bar") }
                #expect(multi.code == .crossSlot)
                #expect(try await client.send("DEL", "{t}foo", "{t}bar") == .integer(0))

                let unknown = try await #require(throws: RedisError.self) { try await client.send("FLUSHALL") }
                #expect(unknown.code == .invalidInput)
                // A command the key table does not know, with its keys named.
                #expect(try await client.send(RedisCommand("SET", "named", "1"), keys: ["named"]) == .status("OK"))
                #expect(try await client.send("GET", "named").string == "1")
            }
        }
    }

    @Test("a node list whose first node is dead still reaches the cluster", arguments: ClusterClientKind.allCases)
    func firstNodeDead(_ kind: ClusterClientKind) async throws {
        try await LocalRedisCluster.run { cluster in
            let dead = RedisNodeAddress(host: "127.0.0.1", port: 1)  // nothing listens on port 1
            let url = "redis://\(dead),\(cluster.nodes[1])/0"
            var configuration = try RedisConfiguration(url: url)
            configuration.connectTimeout = .seconds(2)
            #expect(configuration.host == "127.0.0.1" && configuration.port == 1)
            try await RedisClusterClients.with(kind, configuration: configuration) { client in
                try await client.send("SET", "first-dead", "ok")
                #expect(try await client.send("GET", "first-dead").string == "ok")
                #expect(client.map?.masters.count == 3)
            }

            // No node answering at all: a connection error saying so, with nothing sent.
            try await RedisClusterClients.with(
                kind, configuration: RedisConfiguration(nodes: [dead], connectTimeout: .seconds(1))
            ) { nowhere in
                let error = try await #require(throws: RedisError.self) { try await nowhere.send("GET", "x") }
                #expect(error.source == .connection)
                #expect(error.code == .connect)
                #expect(!error.outcomeUnknown)
            }
        }
    }

    @Test("a server that is not in cluster mode is a clear client error", arguments: ClusterClientKind.allCases)
    func notACluster(_ kind: ClusterClientKind) async throws {
        guard IntegrationEnvironment.isAvailable else { return }
        try await RedisClusterClients.with(kind, configuration: try IntegrationEnvironment.redisConfiguration()) {
            client in
            let error = try await #require(throws: RedisError.self) { try await client.send("GET", "x") }
            #expect(error.source == .client)
            #expect(error.message.contains("not a cluster node"))
        }
    }

    @Test("the reactor client's concurrent callers to one node share writes: 200 INCRs reach it in a few reads")
    func concurrentCallersShareWrites() async throws {
        try await LocalRedisCluster.run { cluster in
            try await RedisClusterClients.with(.reactor, configuration: cluster.configuration) { client in
                let key = "{shared}:counter"
                try await client.send("SET", key, 0)  // reads the map, opens the node's connection
                let node = try await client.master(forSlot: RedisClusterSlot.slot(for: key))
                let before = try await Self.readsProcessed(by: node, of: cluster)
                let callers = 200
                let counts = try await withThrowingTaskGroup(of: Int64.self) { group in
                    for _ in 0..<callers {
                        group.addTask { try await client.send("INCR", key).int ?? -1 }
                    }
                    return try await group.reduce(into: [Int64]()) { $0.append($1) }
                }
                let after = try await Self.readsProcessed(by: node, of: cluster)
                #expect(counts.sorted() == Array(1...Int64(callers)), "every INCR ran exactly once")
                // The node counts every read of a client socket; `after` includes its own INFO's.
                let reads = after - before - 1
                #expect(reads >= 1)
                #expect(reads <= 20, "\(callers) concurrent sends took \(reads) reads on the node")
            }
        }
    }

    /// The node's `total_reads_processed` (reads of client sockets since it started).
    static func readsProcessed(by node: RedisNodeAddress, of cluster: LocalRedisCluster) async throws -> Int {
        let info = try await cluster.send(to: node, "INFO", "stats").string ?? ""
        let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("total_reads_processed:") }
        return try #require(line.flatMap { Int($0.dropFirst("total_reads_processed:".count)) })
    }

    /// Whether two maps give every slot the same master (nodes list their ranges in their own order).
    static func sameOwners(_ first: RedisClusterMap, _ second: RedisClusterMap) -> Bool {
        (0..<RedisClusterSlot.count).allSatisfy { first.master(forSlot: $0) == second.master(forSlot: $0) }
    }
}
