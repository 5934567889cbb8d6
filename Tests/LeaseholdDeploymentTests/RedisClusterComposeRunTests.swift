import AsyncHTTPClient
import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdRedis
import LeaseholdTesting
import NIOCore
import NIOHTTP1
import Testing

/// compose.yaml + redis-cluster.yaml's Redis Cluster without Docker: six `redis-server` processes
/// with the override's own arguments for each node (only the port, cluster bus port, data
/// directory and bind address added, and the announced host name `localhost` instead of the
/// service name, as no Docker DNS resolves those here); then `redis-cluster-create`'s own script,
/// with its own environment but the nodes' local addresses; then `migrate`, two `ingress`, two
/// `worker` and two `supervisor` with the merged files' commands and environment (see
/// ``LocalComposeRun``: REDIS_URL's six nodes replaced by the local ones). Bookings go through and
/// every role stops with exit 0.
@Suite(
    "Compose: the Redis Cluster override as local processes", .serialized,
    .enabled(
        if: IntegrationEnvironment.isAvailable
            && (FileManager.default.isExecutableFile(atPath: LocalRedisCluster.redisServer.path)
                || IntegrationEnvironment.isRequired)
    ))
struct RedisClusterComposeRunTests {
    static let apiToken = "cluster-compose-token"

    /// The six nodes, running.
    final class Nodes: Sendable {
        let directory: URL
        /// Service name → local address.
        let addresses: [String: RedisNodeAddress]
        let processes: [String: ChildProcess]

        init(compose: ComposeFile) throws {
            let nodes = UnitTests.RedisClusterOverrideTests.nodes(in: compose)
            guard nodes.count == 6 else { throw TestSetupError("expected six nodes, found \(nodes.map(\.name))") }
            directory = try makeTemporaryDirectory("redis-cluster-compose")
            let ports = try LowPorts.free(2 * nodes.count)
            var addresses: [String: RedisNodeAddress] = [:]
            var processes: [String: ChildProcess] = [:]
            for (index, node) in nodes.enumerated() {
                let data = directory.appendingPathComponent(node.name)
                try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
                var arguments = Array(node.command.dropFirst())  // after redis-server
                guard let announce = arguments.firstIndex(of: "--cluster-announce-hostname") else {
                    throw TestSetupError("\(node.name) announces no host name")
                }
                arguments[announce + 1] = "localhost"
                arguments += [
                    "--port", String(ports[index]), "--cluster-port", String(ports[nodes.count + index]),
                    "--bind", "127.0.0.1", "--dir", data.path, "--daemonize", "no", "--logfile", "",
                ]
                addresses[node.name] = RedisNodeAddress(host: "localhost", port: ports[index])
                processes[node.name] = try ChildProcess(
                    name: node.name, executable: LocalRedisCluster.redisServer, arguments: arguments,
                    log: directory.appendingPathComponent("\(node.name).log"))
            }
            self.addresses = addresses
            self.processes = processes
        }

        /// A client of one node by its IP address (no redirects followed).
        func admin(_ name: String) throws -> RedisClient {
            guard let address = addresses[name] else { throw TestSetupError("no node \(name)") }
            return RedisClient(
                configuration: RedisConfiguration(
                    host: "127.0.0.1", port: address.port, connectTimeout: .seconds(2), commandTimeout: .seconds(10)),
                size: 1)
        }

        func stop() async {
            for process in processes.values { await process.stop(signal: SIGKILL, timeout: .seconds(10)) }
        }

        var logs: String {
            processes.keys.sorted().map { name in
                let text =
                    (try? String(contentsOf: directory.appendingPathComponent("\(name).log"), encoding: .utf8)) ?? ""
                return "--- \(name)\n" + text.split(separator: "\n").suffix(15).joined(separator: "\n")
            }.joined(separator: "\n")
        }
    }

    /// Runs `redis-cluster-create`'s entrypoint and command, with its environment and the nodes'
    /// local addresses in REDIS_CLUSTER_NODES.
    static func runCreate(_ compose: ComposeFile, nodes: Nodes) async throws -> (status: Int32, output: String) {
        let create = try #require(compose["redis-cluster-create"])
        var environment = create.environment
        let listed = (environment["REDIS_CLUSTER_NODES"] ?? "").split(separator: " ").map(String.init)
        environment["REDIS_CLUSTER_NODES"] = try listed.map { entry in
            let host = String(entry.split(separator: ":").first ?? "")
            guard entry == "\(host):6379", let local = nodes.addresses[host] else {
                throw TestSetupError("REDIS_CLUSTER_NODES names \(entry), not a node service on 6379")
            }
            return local.description
        }.joined(separator: " ")
        environment["PATH"] = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let arguments = create.entrypoint + create.command
        let log = nodes.directory.appendingPathComponent("create-\(UUID().uuidString.prefix(6)).log")
        let process = try ChildProcess(
            name: "redis-cluster-create", executable: try LocalComposeRun.which(arguments[0]),
            arguments: Array(arguments.dropFirst()), log: log, environment: environment)
        guard await process.waitForExit(timeout: .seconds(180)) else {
            await process.stop(signal: SIGKILL, timeout: .seconds(5))
            throw TestSetupError("redis-cluster-create did not finish:\n\(process.output)")
        }
        return (process.exitStatus ?? -1, process.output)
    }

    /// What identifies a formed cluster: every node's ID, its view of the slots, the epoch.
    static func snapshot(_ nodes: Nodes) async throws -> [String] {
        var lines: [String] = []
        for name in nodes.addresses.keys.sorted() {
            let admin = try nodes.admin(name)
            let replies = try await admin.pipeline([
                RedisCommand("CLUSTER", "MYID"), RedisCommand("CLUSTER", "INFO"), RedisCommand("CLUSTER", "SLOTS"),
            ])
            admin.close()
            let id = replies[0].string ?? "?"
            let info = replies[1].string ?? ""
            let epoch = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cluster_current_epoch:") } ?? ""
            let map = try RedisClusterMap(
                clusterSlotsReply: replies[2], queried: RedisNodeAddress(host: "127.0.0.1", port: 1))
            lines.append("\(name) \(id) \(epoch) \(map.ranges.map { "\($0.slots) \($0.master)" })")
        }
        return lines
    }

    @Test("the override's nodes form a cluster with its create script, once, and bookings go through")
    func clusterTopology() async throws {
        var variables = try ComposeFile.exampleVariables()
        variables["LEASEHOLD_API_TOKEN"] = Self.apiToken
        let compose = try ComposeFile.load(overrides: [UnitTests.RedisClusterOverrideTests.file], variables: variables)
        let nodes = try Nodes(compose: compose)
        do {
            try await exercise(compose: compose, nodes: nodes)
        } catch {
            let logs = nodes.logs
            await nodes.stop()
            Issue.record("Redis nodes:\n\(logs)")
            throw error
        }
        await nodes.stop()
        try? FileManager.default.removeItem(at: nodes.directory)
    }

    private func exercise(compose: ComposeFile, nodes: Nodes) async throws {
        // First run: every node is empty, so the script creates the cluster.
        let first = try await Self.runCreate(compose, nodes: nodes)
        #expect(first.status == 0, "\(first.output)")
        #expect(first.output.contains("no cluster yet: creating it"), "\(first.output)")
        #expect(first.output.contains("cluster_state:ok on all 6 members"), "\(first.output)")

        // Three masters with one replica each (a replica shows in the map once it has attached,
        // which the script does not wait for), and every node named by the announced host name:
        // the node was asked by its IP address, so `localhost` comes from the reply.
        let admin = try nodes.admin("redis")
        var map: RedisClusterMap
        let deadline = ContinuousClock.now + .seconds(30)
        repeat {
            map = try RedisClusterMap(
                clusterSlotsReply: try await admin.send(RedisCommand("CLUSTER", "SLOTS")),
                queried: RedisNodeAddress(host: "127.0.0.1", port: nodes.addresses["redis"]!.port))
            if map.nodes.count < 6 { try await Task.sleep(for: .milliseconds(200)) }
        } while map.nodes.count < 6 && ContinuousClock.now < deadline
        admin.close()
        let before = try await Self.snapshot(nodes)
        #expect(map.coversEverySlot)
        #expect(map.masters.count == 3, "\(map.masters)")
        #expect(map.ranges.allSatisfy { $0.replicas.count == 1 }, "\(map.ranges)")
        #expect(Set(map.nodes) == Set(nodes.addresses.values), "\(map.nodes)")

        // Second run (the next `docker compose up`): nothing changes.
        let second = try await Self.runCreate(compose, nodes: nodes)
        #expect(second.status == 0, "\(second.output)")
        #expect(second.output.contains("the cluster exists: nothing to create"), "\(second.output)")
        #expect(!second.output.contains("creating"), "\(second.output)")
        #expect(try await Self.snapshot(nodes) == before)

        try await followsMovedToHostName(nodes: nodes, map: map)
        try await runRoles(compose: compose, nodes: nodes)
    }

    /// A slot moved after a client read the map: the old master's MOVED names the new one by host
    /// name, and the cluster client follows it there.
    private func followsMovedToHostName(nodes: Nodes, map: RedisClusterMap) async throws {
        let key = "{compose-moved-probe}key"
        let slot = RedisClusterSlot.slot(for: key)
        let configuration = try RedisConfiguration(
            url: "redis://" + nodes.addresses.values.map(\.description).sorted().joined(separator: ",") + "/0")
        let client = RedisClient(configuration: configuration)
        do {
            #expect(try await client.send("GET", key) == .null)
            let source = try #require(try await client.configuration(forKey: key).nodes.first)
            let target = try #require(map.masters.first { $0 != source })
            let name = { (address: RedisNodeAddress) in nodes.addresses.first { $0.value == address }?.key ?? "?" }
            // Hand the (empty) slot to `target`, as `redis-cli --cluster reshard` ends a move.
            let targetAdmin = try nodes.admin(name(target))
            let targetID = try #require(try await targetAdmin.send(RedisCommand("CLUSTER", "MYID")).string)
            for master in [target, source] + map.masters.filter({ $0 != target && $0 != source }) {
                let admin = try nodes.admin(name(master))
                _ = try await admin.send(RedisCommand("CLUSTER", "SETSLOT", slot, "NODE", targetID))
                admin.close()
            }
            // What the old master answers now.
            let sourceAdmin = try nodes.admin(name(source))
            do {
                _ = try await sourceAdmin.send(RedisCommand("SET", key, "direct"))
                Issue.record("\(source) still took a write for slot \(slot)")
            } catch let error as RedisError {
                let redirect = RedisClusterRedirect(
                    error, from: RedisNodeAddress(host: "127.0.0.1", port: source.port))
                #expect(redirect == RedisClusterRedirect(kind: .moved, slot: slot, node: target), "\(error)")
                #expect(error.message.contains("localhost:\(target.port)"), "\(error.message)")
            }
            sourceAdmin.close()
            // The client, whose map still says `source`, follows the MOVED to `localhost:<port>`.
            #expect(try await client.send("SET", key, "through-the-client") == .status("OK"))
            #expect(try await client.configuration(forKey: key).nodes.first == target)
            #expect(try await targetAdmin.send(RedisCommand("GET", key)).string == "through-the-client")
            _ = try await targetAdmin.send(RedisCommand("DEL", key))
            targetAdmin.close()
        } catch {
            client.close()
            throw error
        }
        client.close()
    }

    private func runRoles(compose: ComposeFile, nodes: Nodes) async throws {
        let run = try await LocalComposeRun(compose: compose, redisNodes: nodes.addresses)
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            try await drive(run: run, http: http)
        } catch {
            _ = await run.shutdown()
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
        let statuses = await run.shutdown()
        #expect(statuses.count == 6)
        for (name, status) in statuses.sorted(by: { $0.key < $1.key }) {
            #expect(status == 0, "\(name) exited \(status) on SIGTERM")
        }
        if statuses.values.allSatisfy({ $0 == 0 }) { try? FileManager.default.removeItem(at: run.directory) }
    }

    private func drive(run: LocalComposeRun, http: HTTPClient) async throws {
        let compose = run.compose
        let migrated = try await run.run(try #require(compose["migrate"]))
        #expect(migrated.status == 0, "\(migrated.output)")
        var started: [LocalComposeRun.Replica] = []
        for name in ["ingress", "worker", "supervisor"] { started += try run.start(try #require(compose[name])) }
        #expect(started.count == 6)
        for replica in started { try await run.waitHealthy(replica) }
        for replica in started {
            #expect(replica.environment["LEASEHOLD_REDIS_SHARDS"] == "3")
            #expect(replica.environment["REDIS_URL"]?.split(separator: ",").count == 6)
        }

        let worker = try #require(compose["worker"])
        let seed = try await LeaseholdExecutable.run(
            ["slots", "sync", "--generate", "8", "--users", "20", "--json", "--start", "2031-01-01T09:00:00Z"],
            in: run.directory, environment: try run.localEnvironment(for: worker))
        #expect(seed.status == 0, "\(seed.output)")
        let report = seed.output.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
        let slots =
            ((try JSONSerialization.jsonObject(with: Data(report.utf8)) as? [String: Any])?["slotIDs"] as? [NSNumber])?
            .map(\.int64Value) ?? []
        try #require(slots.count == 8)

        // Two requests for each of 8 slots, from different users, spread over both ingress replicas.
        let ingress = started.filter { $0.service == "ingress" }.map { "http://127.0.0.1:\($0.port ?? 0)" }
        let requests = (0..<16).map { index in
            (id: "cluster-\(UUID().uuidString.prefix(8))-\(index)", user: index + 1, slot: slots[index / 2])
        }
        let accepted = try await withThrowingTaskGroup(of: Int.self) { group in
            for (index, request) in requests.enumerated() {
                let base = ingress[index % ingress.count]
                group.addTask {
                    try await ComposeTopologyTests.book(
                        request.id, user: request.user, slot: request.slot, at: base, token: Self.apiToken, http: http)
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(accepted.allSatisfy { $0 == 202 }, "\(accepted)")

        var outcomes: [String: Int] = [:]
        for (index, request) in requests.enumerated() {
            let base = ingress[(index + 1) % ingress.count]  // read back through the other replica
            let status = try await ComposeTopologyTests.outcome(
                of: request.id, at: base, token: Self.apiToken, http: http)
            outcomes[status, default: 0] += 1
        }
        #expect(outcomes == ["booked": 8, "slot_taken": 8])

        let postgres = run.database.client(size: 1)
        let doubles: Int64
        do {
            doubles = try await postgres.query(
                "SELECT count(*) FROM (SELECT time_slot_id FROM interviews WHERE status = 'active' GROUP BY 1 HAVING count(*) > 1) d"
            ).single().decode(Int64.self, at: 0)
        } catch {
            await postgres.close()
            throw error
        }
        await postgres.close()
        #expect(doubles == 0)

        // The entries went to the sharded streams on the cluster's masters.
        let cluster = RedisClient(
            configuration: try RedisConfiguration(url: started[0].environment["REDIS_URL"] ?? ""))
        var entries = 0
        do {
            for shard in 0..<3 {
                let key = "\(run.prefix){bookings:\(shard)}:stream"
                // A shard no request hashed to has no stream (unlikely with 16 random IDs).
                guard try await cluster.send("EXISTS", key).int == 1 else { continue }
                let info = try await cluster.send("XINFO", "STREAM", key)
                if let fields = info.array, let index = fields.firstIndex(where: { $0.string == "entries-added" }),
                    index + 1 < fields.count
                {
                    entries += Int(fields[index + 1].int ?? 0)
                }
            }
        } catch {
            cluster.close()
            throw error
        }
        cluster.close()
        #expect(entries == 16, "entries added over the 3 shards' streams")

        // Two supervisors, exactly one leader.
        var leaders = 0.0
        let deadline = ContinuousClock.now + .seconds(20)
        repeat {
            leaders = 0
            for replica in started where replica.service == "supervisor" {
                let metrics = try await ComposeTopologyTests.send(
                    http, .GET, "http://127.0.0.1:\(replica.port ?? 0)/metrics"
                ).body
                leaders += ComposeTopologyTests.sum("leasehold_supervisor_is_leader", in: metrics)
            }
            if leaders != 1 { try await Task.sleep(for: .milliseconds(200)) }
        } while leaders != 1 && ContinuousClock.now < deadline
        #expect(leaders == 1)
    }
}
