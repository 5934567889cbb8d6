import LeaseholdLocalStack
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// A master of a real local cluster (3 masters, 3 replicas, 1 s node timeout) killed with SIGKILL.
@Suite("Redis Cluster failover", .enabled(if: LocalRedisCluster.isAvailable))
struct RedisClusterFailoverTests {
    @Test(
        "kill -9 of a master: once its replica takes over, the client refreshes its map and carries on",
        arguments: ClusterClientKind.allCases)
    func masterKilled(_ kind: ClusterClientKind) async throws {
        try await LocalRedisCluster.run(masters: 3, replicasPerMaster: 1, nodeTimeout: .milliseconds(1000)) {
            cluster in
            try await RedisClusterClients.with(kind, configuration: cluster.configuration) { client in
                let keys = (0..<60).map { "failover:\($0)" }
                _ = try await client.pipeline(keys.map { RedisCommand("SET", $0, "v-\($0)") })
                try await cluster.waitForReplication()

                let map = try #require(client.map)
                let victimKey = keys[0]
                let victimSlot = RedisClusterSlot.slot(for: victimKey)
                let victim = try #require(map.master(forSlot: victimSlot))
                let replica = try #require(map.ranges.first { $0.master == victim }?.replicas.first)
                await cluster.kill(victim)

                // The client alone gets through: calls fail (retryable) until a replica takes over.
                let start = ContinuousClock.now
                var failures: [RedisError] = []
                while true {
                    do {
                        #expect(try await client.send("GET", victimKey).string == "v-\(victimKey)")
                        break
                    } catch let error as RedisError {
                        failures.append(error)
                        guard ContinuousClock.now - start < .seconds(30) else { throw error }
                    }
                }
                #expect(client.map?.master(forSlot: victimSlot) == replica)
                for failure in failures {
                    #expect(failure.source == .connection || failure.code == .clusterDown, "\(failure)")
                }

                let settled = try await cluster.waitForFailover(of: victim)
                #expect(settled.master(forSlot: victimSlot) == replica)
                for key in keys { #expect(try await client.send("GET", key).string == "v-\(key)") }
                try await client.send("SET", victimKey, "after")
                #expect(try await cluster.send(to: replica, "GET", victimKey).string == "after")
            }
        }
    }
}
