import Foundation
import LeaseholdIngress
import LeaseholdRedis
import LeaseholdTesting
import Testing

extension UnitTests {
    /// Compose/redis-cluster.yaml, the override that replaces the one Redis with a six-node Redis
    /// Cluster, kept in step with compose.yaml (alone and with postgres-standby.yaml): the nodes keep
    /// compose.yaml's persistence and announce their service names, every service that reaches Redis
    /// gets every node and a shard count and waits for the cluster, and `redis-cluster-create` runs
    /// after every node is up.
    @Suite("Compose: the Redis Cluster override")
    struct RedisClusterOverrideTests {
        static let file = "redis-cluster.yaml"
        static let url = ComposeFile.directory.appendingPathComponent(file)
        /// The combinations the override is meant for.
        static let combinations = [[file], ["postgres-standby.yaml", file]]

        let base: ComposeFile
        let override: ComposeFile
        let merged: ComposeFile

        init() throws {
            let variables = try ComposeFile.exampleVariables()
            base = try ComposeFile.load(variables: variables)
            override = try ComposeFile.load(
                text: try String(contentsOf: Self.url, encoding: .utf8), variables: variables)
            merged = base.merged(with: override)
        }

        /// The cluster's nodes: services running `redis-server` with `--cluster-enabled yes`, by name.
        static func nodes(in compose: ComposeFile) -> [ComposeService] {
            compose.services.values.filter {
                $0.command.first == "redis-server" && $0.commandValue(after: "--cluster-enabled") == "yes"
            }.sorted { $0.name.count == $1.name.count ? $0.name < $1.name : $0.name.count < $1.name.count }
        }

        /// How many replicas `redis-cluster-create` gives each master.
        static func replicasPerMaster(in compose: ComposeFile) throws -> Int {
            let create = try #require(compose["redis-cluster-create"])
            return try #require(Int(create.environment["REDIS_CLUSTER_REPLICAS"] ?? ""))
        }

        @Test("six nodes in cluster mode, each with compose.yaml's redis settings, volume and healthcheck")
        func nodesKeepPersistence() throws {
            let redis = try #require(base["redis"])
            let nodes = Self.nodes(in: merged)
            #expect(nodes.map(\.name) == ["redis", "redis-2", "redis-3", "redis-4", "redis-5", "redis-6"])
            let declared = try ComposeFile.declaredVolumes(in: base.text)
                .union(ComposeFile.declaredVolumes(in: override.text))
            var sources: Set<String> = []
            for node in nodes {
                #expect(node.image == redis.image, "\(node.name)")
                // Every `--flag value` of compose.yaml's redis (AOF, fsync policy, noeviction), unchanged.
                for flag in redis.command where flag.hasPrefix("--") {
                    #expect(
                        node.commandValue(after: flag) == redis.commandValue(after: flag),
                        "\(node.name): \(flag) is \(node.commandValue(after: flag) ?? "missing")")
                }
                #expect(node.commandValue(after: "--appendonly") == "yes")
                #expect(node.commandValue(after: "--appendfsync") == "always", "the .env.example default")
                #expect(node.commandValue(after: "--maxmemory-policy") == "noeviction")
                // Clients are told names that resolve to the node, whatever its address.
                #expect(node.commandValue(after: "--cluster-announce-hostname") == node.name)
                #expect(node.commandValue(after: "--cluster-preferred-endpoint-type") == "hostname")
                let data = node.volumes.filter { $0.hasSuffix(":/data") }
                #expect(data.count == 1, "\(node.name): \(node.volumes)")
                let source = String(data.first?.split(separator: ":").first ?? "")
                #expect(declared.contains(source), "\(node.name): volume \(source) is not declared")
                sources.insert(source)
                #expect(node.healthcheckTest == redis.healthcheckTest, "\(node.name)")
                #expect(node.string("restart") == "unless-stopped", "\(node.name)")
                #expect(node.stopGracePeriod == redis.stopGracePeriod, "\(node.name)")
            }
            #expect(sources.count == nodes.count, "every node its own volume: \(sources.sorted())")
        }

        /// The cluster bus and nodes.conf use addresses: fixed ones survive a `down` and `up`.
        @Test("every node has a fixed address in the network, outside the range Docker assigns")
        func fixedAddresses() throws {
            let ipam = try #require(merged.ipamConfig(network: "default").first)
            let subnet = try CIDRBlock(try #require(ipam["subnet"]))
            let dynamic = try CIDRBlock(try #require(ipam["ip_range"]))
            let proxy = merged["proxy"]?.ipv4Address(network: "default")
            var seen: Set<String> = []
            for node in Self.nodes(in: merged) {
                let address = try #require(node.ipv4Address(network: "default"), "\(node.name) has no fixed address")
                let bytes = try #require(CIDRBlock.parseAddress(address), "\(node.name): \(address)")
                #expect(subnet.contains(bytes), "\(node.name): \(address) is outside \(subnet)")
                #expect(!dynamic.contains(bytes), "\(node.name): \(address) is in the dynamic range \(dynamic)")
                #expect(address != proxy, "\(node.name) has the proxy's address")
                #expect(seen.insert(address).inserted, "\(node.name): \(address) is taken")
            }
        }

        @Test("every service with REDIS_URL in compose.yaml gets every node, a shard count, and waits for the cluster")
        func everyRedisServiceUsesTheCluster() throws {
            let services = base.services.values.filter { $0.environment["REDIS_URL"] != nil }.map(\.name).sorted()
            #expect(services == ["console", "ingress", "supervisor", "worker"], "\(services)")
            for combination in Self.combinations {
                let compose = try ComposeFile.load(
                    overrides: combination, variables: try ComposeFile.exampleVariables())
                let nodes = Self.nodes(in: compose).map { RedisNodeAddress(host: $0.name, port: 6379) }
                let masters = nodes.count / (1 + (try Self.replicasPerMaster(in: compose)))
                let create = try #require(compose["redis-cluster-create"])
                #expect(create.environment["REDIS_CLUSTER_NODES"] == nodes.map(\.description).joined(separator: " "))
                for name in services {
                    let service = try #require(compose[name])
                    let url = try #require(service.environment["REDIS_URL"])
                    let configuration = try RedisConfiguration(url: url)
                    #expect(configuration.nodes == nodes, "\(combination) \(name): \(url)")
                    #expect(configuration.database == 0)
                    // The base file's empty default means "not sharded", which a cluster refuses.
                    let shards = Int(service.environment["LEASEHOLD_REDIS_SHARDS"] ?? "") ?? 0
                    #expect(shards >= masters, "\(combination) \(name): \(shards) shards for \(masters) masters")
                    #expect(service.dependsOn["redis-cluster-create"] == "service_completed_successfully", "\(name)")
                    // The rest of compose.yaml's Redis settings stay.
                    #expect(
                        service.environment["LEASEHOLD_REDIS_PREFIX"]
                            == base[name]?.environment["LEASEHOLD_REDIS_PREFIX"])
                    for (other, condition) in base[name]?.dependsOn ?? [:] {
                        #expect(
                            service.dependsOn[other] == condition, "\(combination) \(name) lost depends_on \(other)")
                    }
                }
                // With the standby file, its POSTGRES_URL survives this override.
                if combination.contains("postgres-standby.yaml") {
                    #expect(compose["worker"]?.environment["POSTGRES_URL"]?.contains("postgres-standby:5432") == true)
                }
            }
        }

        @Test("LEASEHOLD_REDIS_SHARDS from .env reaches every role; empty means 3")
        func shardCountFromEnv() throws {
            var variables = try ComposeFile.exampleVariables()
            #expect(variables["LEASEHOLD_REDIS_SHARDS"] == "")
            for (value, expected) in [("", "3"), ("6", "6")] {
                variables["LEASEHOLD_REDIS_SHARDS"] = value
                let compose = try ComposeFile.load(overrides: [Self.file], variables: variables)
                for service in compose.services.values where service.environment["REDIS_URL"] != nil {
                    #expect(service.environment["LEASEHOLD_REDIS_SHARDS"] == expected, "\(service.name)")
                }
            }
        }

        /// README, "Replica acknowledgement": after a failover the promoted replica must itself have
        /// N replicas, or its shard answers 503 until one is added.
        @Test("ingress waits for no more replicas than a promoted replica would still have")
        func minReplicasSurvivesAFailover() throws {
            let ingress = try #require(merged["ingress"])
            let minimum = try #require(Int(ingress.environment["LEASEHOLD_REDIS_MIN_REPLICAS"] ?? ""))
            let replicas = try Self.replicasPerMaster(in: merged)
            #expect(minimum == 0 || minimum <= replicas - 1, "\(minimum) with \(replicas) replicas per master")
            #expect(Int(ingress.environment["LEASEHOLD_REDIS_REPLICA_TIMEOUT_MS"] ?? "").map { $0 > 0 } == true)
        }

        @Test("redis-cluster-create runs once, after every node is healthy, and creates with replicas")
        func createService() throws {
            let create = try #require(merged["redis-cluster-create"])
            #expect(create.string("restart") == "no")
            #expect(create.image == base["redis"]?.image, "redis-cli of the nodes' version")
            #expect(create.replicas == 1)
            let nodes = Self.nodes(in: merged).map(\.name)
            #expect(create.dependsOn == Dictionary(uniqueKeysWithValues: nodes.map { ($0, "service_healthy") }))
            #expect(create.entrypoint == ["bash", "-c"])
            let script = create.command.joined(separator: "\n")
            #expect(script.contains("redis-cli --cluster create"))
            #expect(script.contains("--cluster-replicas \"$REDIS_CLUSTER_REPLICAS\""))
            #expect(try Self.replicasPerMaster(in: merged) >= 1)
        }

        @Test(".env.example lists every variable the override interpolates")
        func envExampleListsVariables() throws {
            let used = ComposeInterpolation.referencedNames(in: override.text)
            let listed = Set(try ComposeFile.exampleVariables().keys)
            #expect(!used.isEmpty)
            #expect(used.subtracting(listed).isEmpty, "missing from .env.example: \(used.subtracting(listed).sorted())")
        }

        @Test("every file the override mounts exists")
        func mountedFilesExist() {
            #expect(override.missingMounts.isEmpty, "\(override.missingMounts)")
        }
    }
}
