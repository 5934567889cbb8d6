import LeaseholdLocalStack
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// `MOVED` and `ASK` from a real local cluster whose slots the test migrates by hand, as
/// `redis-cli --cluster reshard` does: `CLUSTER SETSLOT … IMPORTING / MIGRATING`, `MIGRATE`,
/// `CLUSTER SETSLOT … NODE`. Every scenario runs against both cluster clients.
@Suite("Redis Cluster redirects", .enabled(if: LocalRedisCluster.isAvailable))
struct RedisClusterRedirectTests {
    @Test(
        "a slot moved to another master: MOVED is followed, the map updated, pipelines too",
        arguments: ClusterClientKind.allCases)
    func moved(_ kind: ClusterClientKind) async throws {
        try await LocalRedisCluster.run { cluster in
            try await RedisClusterClients.with(kind, configuration: cluster.configuration) { client in
                let key = "{moving}:a"
                let slot = RedisClusterSlot.slot(for: key)
                try await client.send("SET", key, "before")
                let source = try #require(client.map?.master(forSlot: slot))
                let target = try #require(client.map?.masters.first { $0 != source })

                try await cluster.moveSlot(slot, from: source, to: target)
                #expect(client.map?.master(forSlot: slot) == source, "the client has not heard yet")
                let redirect = try await #require(throws: RedisError.self) {
                    try await cluster.send(to: source, "GET", key)
                }
                #expect(redirect.code == .moved)

                #expect(try await client.send("GET", key).string == "before")
                #expect(client.map?.master(forSlot: slot) == target)
                try await client.send("SET", key, "after")
                #expect(try await cluster.send(to: target, "GET", key).string == "after")

                // A pipeline whose commands' slots moved meanwhile: each redirected command is sent again.
                let second = "{moving-too}:b"
                let secondSlot = RedisClusterSlot.slot(for: second)
                try await client.send("SET", second, "two")
                let secondSource = try #require(client.map?.master(forSlot: secondSlot))
                let secondTarget = try #require(client.map?.masters.first { $0 != secondSource })
                try await cluster.moveSlot(secondSlot, from: secondSource, to: secondTarget)
                let replies = try await client.pipeline([
                    RedisCommand("GET", second), RedisCommand("GET", key), RedisCommand("SET", second, "three"),
                    RedisCommand("GET", second),
                ])
                #expect(
                    replies == [
                        .bulk(Array("two".utf8)), .bulk(Array("after".utf8)), .status("OK"), .bulk(Array("three".utf8)),
                    ])
                #expect(client.map?.master(forSlot: secondSlot) == secondTarget)
            }
        }
    }

    @Test(
        "a slot in migration: ASK is followed after ASKING, the map is left alone",
        arguments: ClusterClientKind.allCases)
    func ask(_ kind: ClusterClientKind) async throws {
        try await LocalRedisCluster.run { cluster in
            try await RedisClusterClients.with(kind, configuration: cluster.configuration) { client in
                let migrated = "{asking}:migrated"
                let staying = "{asking}:staying"
                let slot = RedisClusterSlot.slot(for: migrated)
                try await client.send("SET", migrated, "m")
                try await client.send("SET", staying, "s")
                let source = try #require(client.map?.master(forSlot: slot))
                let target = try #require(client.map?.masters.first { $0 != source })

                try await cluster.beginMigration(slot: slot, from: source, to: target)
                try await cluster.migrate(keys: [migrated], from: source, to: target)
                let refreshes = client.mapRefreshes
                let redirect = try await #require(throws: RedisError.self) {
                    try await cluster.send(to: source, "GET", migrated)
                }
                #expect(redirect.code == .ask)

                #expect(try await client.send("GET", migrated).string == "m")
                #expect(try await client.send("GET", staying).string == "s")
                // A key the source does not have goes to the target, which takes it only after ASKING.
                try await client.send("SET", "{asking}:new", "n")
                let onTarget = try await cluster.pipeline(
                    to: target, [RedisCommand("ASKING"), RedisCommand("GET", "{asking}:new")])
                #expect(onTarget[1].string == "n")
                // A script (EVALSHA, then EVAL where the target lacks it) and a pipeline take the same path.
                let script = RedisScript("return redis.call('GET', KEYS[1])")
                #expect(try await client.evaluate(script, keys: [migrated]).string == "m")
                #expect(try await client.evaluate(script, keys: [migrated]).string == "m")
                let replies = try await client.pipeline([RedisCommand("GET", migrated), RedisCommand("GET", staying)])
                #expect(replies == [.bulk(Array("m".utf8)), .bulk(Array("s".utf8))])
                #expect(client.map?.master(forSlot: slot) == source, "ASK does not change the map")
                #expect(client.mapRefreshes == refreshes)

                // Keys of one command split between the two nodes: TRYAGAIN until the migration ends.
                let split = try await #require(throws: RedisError.self) {
                    try await client.send("MGET", migrated, staying)
                }
                #expect(split.code == .tryAgain)

                try await cluster.migrateAllKeys(slot: slot, from: source, to: target)
                try await cluster.finishMigration(slot: slot, from: source, to: target)
                #expect(
                    try await client.send("MGET", migrated, staying, "{asking}:new")
                        == .array([.bulk(Array("m".utf8)), .bulk(Array("s".utf8)), .bulk(Array("n".utf8))]))
                #expect(client.map?.master(forSlot: slot) == target)
            }
        }
    }

    @Test(
        "concurrent calls while slots move: every INCR lands exactly once, and the map follows",
        arguments: ClusterClientKind.allCases)
    func concurrentResharding(_ kind: ClusterClientKind) async throws {
        try await LocalRedisCluster.run { cluster in
            try await RedisClusterClients.with(kind, configuration: cluster.configuration, connections: 4) { client in
                let tags = ["{hot-a}", "{hot-b}"]
                let keys = tags.flatMap { tag in (0..<4).map { "\(tag):\($0)" } }
                for key in keys { try await client.send("SET", key, 0) }
                let map = try #require(client.map)
                var moves: [(slot: Int, source: RedisNodeAddress, target: RedisNodeAddress)] = []
                for tag in tags {
                    let slot = RedisClusterSlot.slot(for: tag)
                    let source = try #require(map.master(forSlot: slot))
                    moves.append((slot, source, try #require(map.masters.first { $0 != source })))
                }
                let plannedMoves = moves
                let tasks = 16
                let increments = 40
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for task in 0..<tasks {
                        group.addTask {
                            for index in 0..<increments {
                                try await client.send("INCR", keys[(task + index) % keys.count])
                            }
                        }
                    }
                    group.addTask {
                        for move in plannedMoves {
                            try await cluster.moveSlot(move.slot, from: move.source, to: move.target)
                        }
                    }
                    try await group.waitForAll()
                }
                var total: Int64 = 0
                for key in keys { total += try await client.send("GET", key).int ?? -1_000_000 }
                #expect(total == Int64(tasks * increments))
                for move in moves { #expect(client.map?.master(forSlot: move.slot) == move.target) }
            }
        }
    }
}
