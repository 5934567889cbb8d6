import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdRedis
import LeaseholdTesting
import Synchronization

/// compose.yaml's Leasehold services as local processes: every replica (`deploy.replicas`) of a
/// service runs that service's `command` with its `environment`, changed only where a shared
/// host differs from one container per replica:
///
/// - `POSTGRES_URL` and `REDIS_URL` point at the test servers (a fresh database) instead of the
///   `postgres` and `redis` services — the URLs must name those services; given `redisNodes`
///   (a Redis Cluster's node services and where each runs here), `REDIS_URL` must list exactly
///   those services' nodes, and each is replaced by its local address, in the URL's order;
/// - listen addresses become 127.0.0.1 and listen ports free ones (replicas share one host here);
/// - `LEASEHOLD_REDIS_PREFIX` is unique to the run (other tests share the Redis server);
/// - the image's `ENV` is applied, with `LEASEHOLD_MIGRATIONS_DIR` at the repository's Migrations/.
///
/// Nothing else of the environment the test process has reaches the roles.
final class LocalComposeRun: Sendable {
    /// One running replica.
    struct Replica: Sendable {
        var service: String
        var index: Int
        var environment: [String: String]
        var process: ChildProcess

        var name: String { "\(service)-\(index)" }
        var port: Int? {
            (environment["LEASEHOLD_METRICS_PORT"] ?? environment["LEASEHOLD_INGRESS_PORT"]).flatMap { Int($0) }
        }
    }

    let compose: ComposeFile
    let database: TemporaryDatabase
    let prefix: String
    let directory: URL
    /// Compose service name → the local address of that Redis Cluster node, or `nil` for one Redis.
    let redisNodes: [String: RedisNodeAddress]?
    private let running = Mutex<[Replica]>([])

    var replicas: [Replica] { running.withLock { $0 } }

    init(compose: ComposeFile, redisNodes: [String: RedisNodeAddress]? = nil) async throws {
        self.compose = compose
        self.redisNodes = redisNodes
        self.database = try await TemporaryDatabase.create()
        self.prefix = IntegrationEnvironment.uniqueName("lhc") + ":"
        self.directory = try makeTemporaryDirectory("compose")
    }

    /// The environment one replica of `service` runs with (see the type's documentation).
    func localEnvironment(for service: ComposeService) throws -> [String: String] {
        var environment = try Dockerfile.load().environment
        environment["LEASEHOLD_MIGRATIONS_DIR"] = LeaseholdExecutable.migrationsDirectory.path
        environment.merge(service.environment) { $1 }
        var replacements = [("POSTGRES_URL", "postgres", database.url)]
        if let redisNodes, let url = environment["REDIS_URL"] {
            environment["REDIS_URL"] = try Self.localClusterURL(url, nodes: redisNodes, service: service.name)
        } else {
            replacements.append(("REDIS_URL", "redis", IntegrationEnvironment.redisURL))
        }
        for (variable, host, replacement) in replacements {
            guard let url = environment[variable] else { continue }
            guard URLComponents(string: url)?.host == host, compose[host] != nil else {
                throw TestSetupError("\(service.name): \(variable) should name the compose service \(host), is \(url)")
            }
            environment[variable] = replacement
        }
        if environment["LEASEHOLD_REDIS_PREFIX"] != nil { environment["LEASEHOLD_REDIS_PREFIX"] = prefix }
        for variable in ["LEASEHOLD_INGRESS_HOST", "LEASEHOLD_METRICS_HOST"] where environment[variable] != nil {
            environment[variable] = "127.0.0.1"
        }
        for variable in ["LEASEHOLD_INGRESS_PORT", "LEASEHOLD_METRICS_PORT"] where environment[variable] != nil {
            environment[variable] = String(try freeLoopbackPort())
        }
        environment["PATH"] = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return environment
    }

    /// A cluster `REDIS_URL` (`redis://redis:6379,redis-2:6379,…/0`) with every node replaced by
    /// its local address; throws unless it lists exactly the services of `nodes`, on the port
    /// Redis listens on in its container (6379).
    static func localClusterURL(_ url: String, nodes: [String: RedisNodeAddress], service: String) throws -> String {
        let configuration = try RedisConfiguration(url: url)
        guard configuration.database == 0, configuration.password == nil, configuration.username == nil else {
            throw TestSetupError("\(service): unexpected database or credentials in REDIS_URL \(url)")
        }
        guard Set(configuration.nodes.map(\.host)) == Set(nodes.keys),
            configuration.nodes.allSatisfy({ $0.port == 6379 })
        else {
            throw TestSetupError("\(service): REDIS_URL should list \(nodes.keys.sorted()) on 6379, is \(url)")
        }
        let local = configuration.nodes.compactMap { nodes[$0.host] }
        return "redis://" + local.map(\.description).joined(separator: ",") + "/0"
    }

    /// Runs a one-shot service (migrate) to completion.
    func run(_ service: ComposeService) async throws -> (status: Int32, output: String) {
        let process = try spawn(service, index: 0, environment: try localEnvironment(for: service)).process
        guard await process.waitForExit(timeout: .seconds(120)) else {
            throw TestSetupError("\(service.name) did not finish:\n\(process.output)")
        }
        return (process.exitStatus ?? -1, process.output)
    }

    /// Starts every replica of a long-running service.
    @discardableResult
    func start(_ service: ComposeService) throws -> [Replica] {
        try (0..<service.replicas).map { index in
            let replica = try spawn(service, index: index, environment: try localEnvironment(for: service))
            running.withLock { $0.append(replica) }
            return replica
        }
    }

    private func spawn(_ service: ComposeService, index: Int, environment: [String: String]) throws -> Replica {
        guard FileManager.default.isExecutableFile(atPath: LeaseholdExecutable.url.path) else {
            throw TestSetupError("\(LeaseholdExecutable.url.path) is missing: run `swift build` before `swift test`")
        }
        let process = try ChildProcess(
            name: "\(service.name)-\(index)", executable: LeaseholdExecutable.url, arguments: service.command,
            log: directory.appendingPathComponent("\(service.name)-\(index).log"), environment: environment)
        return Replica(service: service.name, index: index, environment: environment, process: process)
    }

    /// Runs the service's healthcheck `test` in the replica's environment until it passes (as
    /// Docker would, every half second here instead of every `interval`).
    func waitHealthy(_ replica: Replica, timeout: Duration = .seconds(60)) async throws {
        let test = try requireService(compose[replica.service]).healthcheckTest
        let arguments: [String]
        switch test.first {
        case "CMD": arguments = Array(test.dropFirst())
        case "CMD-SHELL": arguments = ["/bin/sh", "-c"] + test.dropFirst()
        default: throw TestSetupError("\(replica.service) has no healthcheck test")
        }
        let executable = try Self.which(arguments[0])
        let deadline = ContinuousClock.now + timeout
        var attempt = 0
        while true {
            attempt += 1
            let check = try ChildProcess(
                name: "health", executable: executable, arguments: Array(arguments.dropFirst()),
                log: directory.appendingPathComponent("\(replica.name)-health.log"), environment: replica.environment)
            if await check.waitForExit(timeout: .seconds(3)), check.exitStatus == 0 { return }
            await check.stop(signal: SIGKILL, timeout: .seconds(2))
            guard replica.process.isRunning else {
                throw TestSetupError(
                    "\(replica.name) exited (\(replica.process.exitStatus ?? -1)):\n\(replica.process.output)")
            }
            guard ContinuousClock.now < deadline else {
                throw TestSetupError(
                    "\(replica.name) never passed its healthcheck (\(attempt) tries):\n\(replica.process.output)")
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// SIGTERM to every replica at once (as `docker compose down` does per service), then each
    /// gets its service's `stop_grace_period` before SIGKILL. Returns exit statuses by replica;
    /// then drops the database and the run's Redis keys.
    func shutdown() async -> [String: Int32] {
        let replicas = self.replicas
        for replica in replicas { replica.process.send(SIGTERM) }
        var statuses: [String: Int32] = [:]
        for replica in replicas {
            let grace = compose[replica.service]?.stopGracePeriod ?? .seconds(10)
            if await !replica.process.waitForExit(timeout: grace) {
                await replica.process.stop(signal: SIGKILL, timeout: .seconds(5))
            }
            statuses[replica.name] = replica.process.exitStatus ?? -1
        }
        try? await database.drop()
        if let redis = try? IntegrationEnvironment.redisClient(size: 1) {
            await redis.deleteKeys(withPrefix: prefix)
            redis.close()
        }
        return statuses
    }

    /// `name` on `PATH`.
    static func which(_ name: String) throws -> URL {
        if name.hasPrefix("/") { return URL(fileURLWithPath: name) }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw TestSetupError("\(name) is not on PATH")
    }
}

/// The service, or a setup error naming it.
private func requireService(_ service: ComposeService?) throws -> ComposeService {
    guard let service else { throw TestSetupError("no such compose service") }
    return service
}
