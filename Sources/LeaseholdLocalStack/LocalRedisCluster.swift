import Foundation
import LeaseholdRedis
import NIOConcurrencyHelpers

/// A Redis Cluster of its own on loopback, for tests and `leasehold demo --redis-cluster`:
/// `redis-server --cluster-enabled yes` per node, joined with `redis-cli --cluster create …
/// --cluster-replicas N`, in a directory of its own (a temporary one unless given).
///
/// Every node gets two free ports below the kernel's ephemeral range (its client port and, through
/// `cluster-port`, its cluster bus port). Nodes keep nothing on disk (`save ""`, no AOF), and
/// replicas sync without the diskless-sync delay, so a cluster is up in a few seconds.
///
/// Cleanup: ``stop()`` kills every node (SIGKILL: the data is thrown away) and removes the
/// directory; ``run(masters:replicasPerMaster:nodeTimeout:_:)`` calls it whatever the body does.
/// If the process that started it dies, a small shell watchdog started with the cluster notices
/// within a second and kills the nodes, so no `redis-server` outlives it.
public final class LocalRedisCluster: Sendable {
    public let directory: URL
    /// Every node's client address, in the order `redis-cli --cluster create` got them (it makes
    /// the first `masters` of them masters).
    public let nodes: [RedisNodeAddress]
    /// `cluster-node-timeout`: how long a node may be unreachable before it is failed over.
    public let nodeTimeout: Duration
    /// Each node's cluster bus port.
    private let busPorts: [RedisNodeAddress: Int]
    private let servers: NIOLockedValueBox<[RedisNodeAddress: ChildProcess]>
    private let admins: NIOLockedValueBox<[RedisNodeAddress: RedisClient]>
    private let watchdog: ChildProcess

    public static let redisServer = URL(fileURLWithPath: "/usr/bin/redis-server")
    public static let redisCLI = URL(fileURLWithPath: "/usr/bin/redis-cli")

    /// Starts a cluster, runs `body`, and stops the cluster whether `body` throws or not.
    public static func run<T>(
        masters: Int = 3, replicasPerMaster: Int = 0, nodeTimeout: Duration = .seconds(5),
        _ body: (LocalRedisCluster) async throws -> T
    ) async throws -> T {
        let cluster = try await start(masters: masters, replicasPerMaster: replicasPerMaster, nodeTimeout: nodeTimeout)
        do {
            let value = try await body(cluster)
            await cluster.stop()
            return value
        } catch {
            await cluster.stop()
            throw error
        }
    }

    /// Starts `masters × (1 + replicasPerMaster)` nodes, creates the cluster, and returns once
    /// every node sees every slot served (`cluster_state:ok`) and every replica is in sync.
    ///
    /// - Parameter nodeTimeout: a small value (1–2 s) makes failover quick; leave larger values
    ///   for tests that must not see a failover when the machine is busy.
    public static func start(
        masters: Int = 3, replicasPerMaster: Int = 0, nodeTimeout: Duration = .seconds(5), directory: URL? = nil
    ) async throws -> LocalRedisCluster {
        guard masters >= 3 else { throw LocalRedisClusterError("a Redis Cluster needs at least 3 masters") }
        for binary in [redisServer, redisCLI] where !FileManager.default.isExecutableFile(atPath: binary.path) {
            throw LocalRedisClusterError("\(binary.path) is not installed (Debian package redis-server)")
        }
        // A port found free may be taken by another process before the node binds it: that node
        // exits, and one more try with other ports gets past it.
        do {
            return try await startOnce(
                masters: masters, replicasPerMaster: replicasPerMaster, nodeTimeout: nodeTimeout, directory: directory)
        } catch {
            return try await startOnce(
                masters: masters, replicasPerMaster: replicasPerMaster, nodeTimeout: nodeTimeout, directory: directory)
        }
    }

    private static func startOnce(
        masters: Int, replicasPerMaster: Int, nodeTimeout: Duration, directory: URL?
    ) async throws -> LocalRedisCluster {
        let count = masters * (1 + replicasPerMaster)
        let ports = try LowPorts.free(2 * count)
        let nodes = ports.prefix(count).map { RedisNodeAddress(host: "127.0.0.1", port: $0) }
        let directory =
            directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "redis-cluster-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let watchdog = try ChildProcess(
            name: "cluster-watchdog", executable: URL(fileURLWithPath: "/bin/sh"),
            arguments: [
                "-c",
                // Until the test process is gone, then every node whose pid was recorded.
                #"while kill -0 "$1" 2>/dev/null; do sleep 1; done; "#
                    + #"for pid in $(cat "$2/pids" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done; rm -rf "$2""#,
                "watchdog", String(getpid()), directory.path,
            ],
            log: directory.appendingPathComponent("watchdog.log"))
        let cluster = LocalRedisCluster(
            directory: directory, nodes: nodes,
            busPorts: Dictionary(uniqueKeysWithValues: zip(nodes, ports.suffix(count))), nodeTimeout: nodeTimeout,
            watchdog: watchdog)
        do {
            try await cluster.create(replicasPerMaster: replicasPerMaster)
            try await cluster.waitUntilReady(replicasPerMaster: replicasPerMaster)
        } catch {
            let logs = cluster.logs
            await cluster.stop()
            throw LocalRedisClusterError("\(error)\n\(logs)")
        }
        return cluster
    }

    private init(
        directory: URL, nodes: [RedisNodeAddress], busPorts: [RedisNodeAddress: Int], nodeTimeout: Duration,
        watchdog: ChildProcess
    ) {
        self.directory = directory
        self.nodes = nodes
        self.busPorts = busPorts
        self.nodeTimeout = nodeTimeout
        self.watchdog = watchdog
        self.servers = NIOLockedValueBox([:])
        self.admins = NIOLockedValueBox([:])
    }

    /// The pids of the nodes running now.
    public var processIDs: [Int32] {
        servers.withLockedValue { servers in servers.values.filter(\.isRunning).map(\.pid) }
    }

    /// `redis://127.0.0.1:p1,127.0.0.1:p2,…/0`: every node.
    public var url: String {
        "redis://" + nodes.map(\.description).joined(separator: ",") + "/0"
    }

    /// A configuration listing every node, with short timeouts.
    public var configuration: RedisConfiguration {
        RedisConfiguration(nodes: nodes, connectTimeout: .seconds(2), commandTimeout: .seconds(5))
    }

    /// The last lines of every node's log, for a failing test's message.
    public var logs: String {
        let names =
            ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasSuffix(".log") }.sorted()
        return names.map { name in
            let text = (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)) ?? ""
            return "--- \(name)\n" + text.split(separator: "\n").suffix(20).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    // MARK: Talking to one node

    /// Sends a command to `node` itself (no redirects followed: a `MOVED` reply is thrown).
    @discardableResult
    public func send(to node: RedisNodeAddress, _ arguments: any RedisArgument...) async throws -> RedisValue {
        try await admin(node).send(RedisCommand(arguments))
    }

    /// Sends commands to `node` itself in one round trip; error replies in place.
    public func pipeline(to node: RedisNodeAddress, _ commands: [RedisCommand]) async throws -> [RedisValue] {
        try await admin(node).pipeline(commands)
    }

    /// `CLUSTER MYID`.
    public func nodeID(of node: RedisNodeAddress) async throws -> String {
        guard let id = try await send(to: node, "CLUSTER", "MYID").string else {
            throw LocalRedisClusterError("CLUSTER MYID of \(node) answered no ID")
        }
        return id
    }

    /// The slot map as `node` sees it.
    public func map(from node: RedisNodeAddress) async throws -> RedisClusterMap {
        try RedisClusterMap(clusterSlotsReply: try await send(to: node, "CLUSTER", "SLOTS"), queried: node)
    }

    /// The slot map as the first running node sees it.
    public func map() async throws -> RedisClusterMap {
        guard let node = runningNodes.first else { throw LocalRedisClusterError("no node of the cluster is running") }
        return try await map(from: node)
    }

    /// The nodes not killed.
    public var runningNodes: [RedisNodeAddress] {
        let servers = servers.withLockedValue { $0 }
        return nodes.filter { servers[$0]?.isRunning == true }
    }

    // MARK: Failures

    /// SIGKILL for one node: its connections are cut without a goodbye, its data is gone.
    public func kill(_ node: RedisNodeAddress) async {
        guard let server = servers.withLockedValue({ $0[node] }) else { return }
        await server.stop(signal: SIGKILL, timeout: .seconds(10))
        if let admin = admins.withLockedValue({ $0.removeValue(forKey: node) }) { admin.close() }
    }

    /// SIGSTOP for one node: its connections stay open and nothing is answered (a stalled
    /// server, a long fork, a paused VM) until ``thaw(_:)``.
    public func freeze(_ node: RedisNodeAddress) {
        servers.withLockedValue { $0[node] }?.send(SIGSTOP)
    }

    public func thaw(_ node: RedisNodeAddress) {
        servers.withLockedValue { $0[node] }?.send(SIGCONT)
    }

    /// Waits until a replica has taken over every slot `dead` served: every running node's map
    /// names other masters and says `cluster_state:ok`. Returns that map.
    public func waitForFailover(of dead: RedisNodeAddress, timeout: Duration = .seconds(60)) async throws
        -> RedisClusterMap
    {
        var result: RedisClusterMap?
        try await waitUntil("a replica has taken over from \(dead)", timeout: timeout) {
            var last: RedisClusterMap?
            for node in self.runningNodes {
                let map = try await self.map(from: node)
                guard map.coversEverySlot, map.ranges.allSatisfy({ $0.master != dead }) else { return false }
                guard try await self.clusterInfo(node)["cluster_state"] == "ok" else { return false }
                last = map
            }
            result = last
            return last != nil
        }
        guard let result else { throw LocalRedisClusterError("no running node") }
        return result
    }

    /// Waits until every replica has received everything its master has written (equal
    /// replication offsets), so a killed master loses nothing that was acknowledged before.
    public func waitForReplication(timeout: Duration = .seconds(30)) async throws {
        try await waitUntil("every replica has caught up with its master", timeout: timeout) {
            for node in self.runningNodes {
                let info = try await self.info(node, section: "replication")
                guard info["role"] == "master" else { continue }
                let offset = info["master_repl_offset"] ?? ""
                let replicas = info.filter { $0.key.hasPrefix("slave") && $0.key.dropFirst(5).allSatisfy(\.isNumber) }
                for (_, line) in replicas where !line.contains("offset=\(offset),") { return false }
            }
            return true
        }
    }

    // MARK: Slot migration (what `redis-cli --cluster reshard` does, a step at a time)

    /// Marks `slot` as migrating from `source` to `target` (`CLUSTER SETSLOT … IMPORTING` on the
    /// target, then `MIGRATING` on the source): from now on the source answers `ASK` for keys of
    /// the slot it no longer has.
    public func beginMigration(slot: Int, from source: RedisNodeAddress, to target: RedisNodeAddress) async throws {
        try await send(to: target, "CLUSTER", "SETSLOT", slot, "IMPORTING", try await nodeID(of: source))
        try await send(to: source, "CLUSTER", "SETSLOT", slot, "MIGRATING", try await nodeID(of: target))
    }

    /// Moves `keys` (of a migrating slot) from `source` to `target` with `MIGRATE`.
    public func migrate(keys: [String], from source: RedisNodeAddress, to target: RedisNodeAddress) async throws {
        guard !keys.isEmpty else { return }
        let arguments: [any RedisArgument] =
            ["MIGRATE", target.host, target.port, "", 0, 5000, "KEYS"] + keys.map { $0 as any RedisArgument }
        try await admin(source).send(RedisCommand(arguments))
    }

    /// Moves every key of `slot` from `source` to `target`.
    public func migrateAllKeys(slot: Int, from source: RedisNodeAddress, to target: RedisNodeAddress) async throws {
        while true {
            let keys = try await send(to: source, "CLUSTER", "GETKEYSINSLOT", slot, 100).array?.compactMap(\.string)
            guard let keys, !keys.isEmpty else { return }
            try await migrate(keys: keys, from: source, to: target)
        }
    }

    /// Gives `slot` to `target` for good (`CLUSTER SETSLOT … NODE` on the target, the source,
    /// then every other master): the old owner now answers `MOVED`.
    public func finishMigration(slot: Int, from source: RedisNodeAddress, to target: RedisNodeAddress) async throws {
        let targetID = try await nodeID(of: target)
        var order = [target, source]
        for node in try await map().masters where !order.contains(node) && runningNodes.contains(node) {
            order.append(node)
        }
        for node in order { try await send(to: node, "CLUSTER", "SETSLOT", slot, "NODE", targetID) }
    }

    /// Moves `slot` with all its keys from `source` to `target`, and waits until every running
    /// node's map says so.
    public func moveSlot(_ slot: Int, from source: RedisNodeAddress, to target: RedisNodeAddress) async throws {
        try await beginMigration(slot: slot, from: source, to: target)
        try await migrateAllKeys(slot: slot, from: source, to: target)
        try await finishMigration(slot: slot, from: source, to: target)
        try await waitUntil("every node knows slot \(slot) is on \(target)", timeout: .seconds(30)) {
            for node in self.runningNodes where try await self.map(from: node).master(forSlot: slot) != target {
                return false
            }
            return true
        }
    }

    // MARK: Stop

    /// Kills every node, stops the watchdog and removes the directory. Safe to call twice.
    public func stop() async {
        let admins = admins.withLockedValue { admins in
            defer { admins.removeAll() }
            return Array(admins.values)
        }
        for admin in admins { admin.close() }
        let servers = servers.withLockedValue { servers in
            defer { servers.removeAll() }
            return Array(servers.values)
        }
        for server in servers { await server.stop(signal: SIGKILL, timeout: .seconds(10)) }
        await watchdog.stop(signal: SIGKILL, timeout: .seconds(10))
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: Set-up

    private func create(replicasPerMaster: Int) async throws {
        for node in nodes { try startServer(node) }
        for node in nodes {
            try await waitUntil("\(node) answers PING", timeout: .seconds(30)) {
                try await self.send(to: node, "PING") == .status("PONG")
            }
        }
        let create = try ChildProcess(
            name: "redis-cli", executable: Self.redisCLI,
            arguments: ["--cluster", "create"] + nodes.map(\.description) + [
                "--cluster-replicas", String(replicasPerMaster), "--cluster-yes",
            ],
            log: directory.appendingPathComponent("create.log"))
        guard await create.waitForExit(timeout: .seconds(120)) else {
            await create.stop(signal: SIGKILL, timeout: .seconds(5))
            throw LocalRedisClusterError("redis-cli --cluster create did not finish in 120 s")
        }
        guard create.exitStatus == 0 else {
            throw LocalRedisClusterError("redis-cli --cluster create failed (status \(create.exitStatus ?? -1))")
        }
    }

    private func startServer(_ node: RedisNodeAddress) throws {
        let data = directory.appendingPathComponent("node-\(node.port)")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        guard let busPort = busPorts[node] else { throw LocalRedisClusterError("\(node) has no cluster bus port") }
        let server = try ChildProcess(
            name: "redis-\(node.port)", executable: Self.redisServer,
            arguments: [
                "--bind", node.host, "--port", String(node.port), "--cluster-enabled", "yes",
                "--cluster-port", String(busPort), "--cluster-config-file",
                data.appendingPathComponent("nodes.conf").path,
                "--cluster-node-timeout", String(nodeTimeout.redisMilliseconds),
                // A replica may take over however long it was cut off: tests kill masters at will.
                "--cluster-replica-validity-factor", "0",
                "--dir", data.path, "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0",
                "--daemonize", "no", "--logfile", "",
            ],
            log: directory.appendingPathComponent("node-\(node.port).log"))
        servers.withLockedValue { $0[node] = server }
        let pids = directory.appendingPathComponent("pids")
        if let handle = try? FileHandle(forWritingTo: pids) {
            handle.seekToEndOfFile()
            handle.write(Data("\(server.pid)\n".utf8))
            try? handle.close()
        } else {
            try Data("\(server.pid)\n".utf8).write(to: pids)
        }
    }

    private func waitUntilReady(replicasPerMaster: Int) async throws {
        try await waitUntil("every node has cluster_state:ok and every replica is in sync", timeout: .seconds(60)) {
            for node in self.nodes {
                let info = try await self.clusterInfo(node)
                guard info["cluster_state"] == "ok", info["cluster_known_nodes"] == String(self.nodes.count) else {
                    return false
                }
                let map = try await self.map(from: node)
                guard map.coversEverySlot, map.ranges.allSatisfy({ $0.replicas.count == replicasPerMaster }) else {
                    return false
                }
                let replication = try await self.info(node, section: "replication")
                if replication["role"] == "slave", replication["master_link_status"] != "up" { return false }
            }
            return true
        }
    }

    private func admin(_ node: RedisNodeAddress) throws -> RedisClient {
        try admins.withLockedValue { admins in
            if let admin = admins[node] { return admin }
            guard nodes.contains(node) else { throw LocalRedisClusterError("\(node) is not a node of this cluster") }
            let admin = RedisClient(
                configuration: RedisConfiguration(
                    host: node.host, port: node.port, connectTimeout: .seconds(2), commandTimeout: .seconds(10)),
                label: "leasehold.local-cluster.admin")
            admins[node] = admin
            return admin
        }
    }

    private func clusterInfo(_ node: RedisNodeAddress) async throws -> [String: String] {
        Self.fields(try await send(to: node, "CLUSTER", "INFO"))
    }

    private func info(_ node: RedisNodeAddress, section: String) async throws -> [String: String] {
        Self.fields(try await send(to: node, "INFO", section))
    }

    /// `name:value` lines (`CLUSTER INFO`, `INFO`) as a dictionary.
    private static func fields(_ reply: RedisValue) -> [String: String] {
        var fields: [String: String] = [:]
        for line in (reply.string ?? "").split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        return fields
    }

    /// Polls `condition` every 100 ms; errors count as "not yet" (a node still starting).
    private func waitUntil(
        _ what: String, timeout: Duration, _ condition: () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        var lastError = "none"
        while true {
            do {
                if try await condition() { return }
            } catch {
                lastError = "\(error)"
            }
            let exited = servers.withLockedValue { $0 }.filter { !$0.value.isRunning && nodes.contains($0.key) }
            for (node, server) in exited where !killedOnPurpose(server) {
                throw LocalRedisClusterError("redis-server \(node) exited while waiting until \(what)")
            }
            guard ContinuousClock.now < deadline else {
                throw LocalRedisClusterError("not true after \(timeout): \(what) (last error: \(lastError))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Whether a server that is not running was stopped by ``kill(_:)`` (SIGKILL, status 137).
    private func killedOnPurpose(_ server: ChildProcess) -> Bool {
        server.exitStatus == 128 + SIGKILL
    }
}

/// A local Redis Cluster could not be started or driven (missing binary, a node that exited, a
/// state not reached in time).
public struct LocalRedisClusterError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
