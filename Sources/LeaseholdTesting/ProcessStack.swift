import AsyncHTTPClient
import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdReactor
import LeaseholdRedis
import LeaseholdRuntime
import NIOCore
import NIOHTTP1
import Synchronization

/// The whole system as separate OS processes against the integration servers: a fresh database
/// (migrated), a Redis key prefix of its own, N `leasehold ingress` and M `leasehold worker`
/// processes — the same topology Compose runs, on loopback.
///
/// Every test gets its own database and prefix, so stacks run in parallel without seeing each
/// other. The processes are ``RoleProcesses`` (the demo's too); ``shutdown()`` stops them
/// (SIGTERM), drops the database and deletes the keys.
public final class ProcessStack: Sendable {
    public static let apiToken = "test-api-token"
    public static let telegramSecret = "test-telegram-secret"

    public let database: TemporaryDatabase
    public let prefix: String
    /// Streams per source when the stack runs the sharded key layout (`LEASEHOLD_REDIS_SHARDS`).
    public let shards: Int?
    /// The stack's key layout.
    public var keys: RedisKeys { RedisKeys(prefix: prefix, shards: shards) }
    public let directory: URL
    private let ports: Mutex<[Int]>
    public var ingressPorts: [Int] { ports.withLock { $0 } }
    public let postgres: PostgresClient
    /// The same database through the non-blocking pool a worker's handlers use, on a reactor of
    /// the stack's own (for tests that run an entry processor in the test process).
    public let workerPostgres: PostgresClient
    /// Redis through the non-blocking client a worker's leases and completions use, on the same reactor.
    public let workerRedis: RedisClient
    public let redis: RedisClient
    /// What every role gets as `REDIS_URL`.
    public let redisURL: String
    public let http: HTTPClient
    /// The stack's processes: every role started so far, by name.
    public let processes: RoleProcesses
    private let stopped = Mutex(false)

    /// Starts the stack and waits until every ingress answers `/healthz`.
    ///
    /// - Parameters:
    ///   - workerEnvironment: extra environment for the workers (e.g. a short lease TTL).
    ///   - shards: run every role with the sharded key layout, this many streams per source.
    ///   - redisURL: the Redis every role and ``redis`` use (several nodes: a cluster); the
    ///     integration Redis by default.
    public static func start(
        ingress: Int = 1, workers: Int = 1, workerEnvironment: [String: String] = [:],
        ingressEnvironment: [String: String] = [:], supervisors: Int = 0,
        supervisorEnvironment: [String: String] = [:], shards: Int? = nil, redisURL: String? = nil
    ) async throws -> ProcessStack {
        guard FileManager.default.isExecutableFile(atPath: LeaseholdExecutable.url.path) else {
            throw TestSetupError("\(LeaseholdExecutable.url.path) is missing: run `swift build` before `swift test`")
        }
        let database = try await TemporaryDatabase.create()
        let postgres = database.client(size: 8)
        _ = try await Migrator(client: postgres).migrate(
            try Migration.load(from: LeaseholdExecutable.migrationsDirectory))
        let stack = ProcessStack(
            database: database, prefix: "\(IntegrationEnvironment.uniqueName("lht")):", shards: shards,
            directory: try makeTemporaryDirectory("stack"),
            ingressPorts: try (0..<ingress).map { _ in try freeLoopbackPort() }, postgres: postgres,
            redisURL: redisURL ?? IntegrationEnvironment.redisURL,
            redis: try redisURL.map { RedisClient(configuration: try RedisConfiguration(url: $0), size: 8) }
                ?? IntegrationEnvironment.redisClient(size: 8))
        do {
            for (index, port) in stack.ingressPorts.enumerated() {
                try stack.startIngress(index: index, port: port, environment: ingressEnvironment)
            }
            for index in 0..<workers {
                try stack.startWorker(name: "worker-\(index)", environment: workerEnvironment)
            }
            for index in 0..<supervisors {
                try stack.startSupervisor(name: "supervisor-\(index)", environment: supervisorEnvironment)
            }
            try await stack.waitUntilHealthy(expectGroup: workers > 0)
        } catch {
            await stack.shutdown()
            throw error
        }
        return stack
    }

    private init(
        database: TemporaryDatabase, prefix: String, shards: Int?, directory: URL, ingressPorts: [Int],
        postgres: PostgresClient, redisURL: String, redis: RedisClient
    ) {
        self.redisURL = redisURL
        self.database = database
        self.prefix = prefix
        self.shards = shards
        self.directory = directory
        self.ports = Mutex(ingressPorts)
        self.postgres = postgres
        let reactor = Reactor(label: "leasehold.test-stack")
        self.workerPostgres = PostgresClient(configuration: postgres.configuration, reactor: reactor, size: 16)
        self.workerRedis = RedisClient(configuration: redis.configuration, reactor: reactor)
        self.redis = redis
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.processes = RoleProcesses(
            executable: LeaseholdExecutable.url,
            environment: ProcessInfo.processInfo.environment.merging(
                Self.roleEnvironment(database: database, redisURL: redisURL, prefix: prefix, shards: shards)
            ) { $1 })
    }

    /// A test that threw before ``shutdown()`` must not leave processes running or crash the test
    /// binary (AsyncHTTPClient traps when a client is released without a shutdown): kill the
    /// processes and shut the client down here. The database is left behind for inspection.
    deinit {
        guard !stopped.withLock({ $0 }) else { return }
        processes.signalAll(SIGKILL)
        try? http.syncShutdown()
    }

    /// The environment every role gets (over this process's own).
    public var environment: [String: String] {
        Self.roleEnvironment(database: database, redisURL: redisURL, prefix: prefix, shards: shards)
    }

    private static func roleEnvironment(
        database: TemporaryDatabase, redisURL: String, prefix: String, shards: Int?
    ) -> [String: String] {
        var environment = [
            "POSTGRES_URL": database.url, "REDIS_URL": redisURL,
            "LEASEHOLD_REDIS_PREFIX": prefix, "LEASEHOLD_API_TOKEN": Self.apiToken,
            "TELEGRAM_WEBHOOK_SECRET": Self.telegramSecret, "LOG_LEVEL": "info",
        ]
        if let shards { environment["LEASEHOLD_REDIS_SHARDS"] = String(shards) }
        return environment
    }

    /// The (first) stream of `source`.
    public func stream(_ source: String) -> String { keys.stream(source) }

    public func ingressURL(_ index: Int = 0) -> String {
        let ports = ingressPorts
        return "http://127.0.0.1:\(ports[index % ports.count])"
    }

    /// Starts one more ingress (e.g. with a different environment) and returns its index.
    public func addIngress(environment extra: [String: String]) throws -> Int {
        let port = try freeLoopbackPort()
        let index = ports.withLock { ports -> Int in
            ports.append(port)
            return ports.count - 1
        }
        try startIngress(index: index, port: port, environment: extra)
        return index
    }

    @discardableResult
    public func startIngress(index: Int, port: Int, environment extra: [String: String] = [:]) throws -> ChildProcess {
        try start(
            "ingress-\(index)", ["ingress", "--host", "127.0.0.1", "--port", String(port)], environment: extra)
    }

    @discardableResult
    public func startWorker(name: String, environment extra: [String: String] = [:]) throws -> ChildProcess {
        try start(name, ["worker"], environment: ["LEASEHOLD_CONSUMER_NAME": name].merging(extra) { $1 })
    }

    @discardableResult
    public func startSupervisor(name: String, environment extra: [String: String] = [:]) throws -> ChildProcess {
        try start(name, ["supervisor"], environment: extra)
    }

    /// Starts a `leasehold notifier` sending to `botAPI` (``FakeBotAPI/url``) with ``FakeBotAPI/token``.
    @discardableResult
    public func startNotifier(name: String, botAPI: String, environment extra: [String: String] = [:]) throws
        -> ChildProcess
    {
        let own = [
            "TELEGRAM_BOT_TOKEN": FakeBotAPI.token, "TELEGRAM_API_BASE_URL": botAPI, "LEASEHOLD_NOTIFIER_NAME": name,
        ]
        return try start(name, ["notifier"], environment: own.merging(extra) { $1 })
    }

    /// Starts `leasehold <arguments>` as `name`, its output in a fresh `<name>.log` of ``directory``.
    private func start(_ name: String, _ arguments: [String], environment: [String: String]) throws -> ChildProcess {
        try processes.start(
            .init(
                name: name, arguments: arguments, log: directory.appendingPathComponent("\(name).log"),
                environment: environment),
            freshLog: true)
    }

    public var workers: [ChildProcess] { processes.named("worker") }
    public var notifiers: [ChildProcess] { processes.named("notifier") }
    public var supervisors: [ChildProcess] { processes.named("supervisor") }
    public var ingresses: [ChildProcess] { processes.named("ingress") }

    /// Waits until ingress `index` answers `/healthz` (e.g. one started with ``addIngress(environment:)``).
    public func waitForIngress(_ index: Int, until deadline: ContinuousClock.Instant = .now + .seconds(60))
        async throws
    {
        try await processes.waitUntilAnswering([ingressURL(index) + "/healthz"], until: deadline) { url in
            try await self.fetch(url).status
        }
    }

    private func waitUntilHealthy(expectGroup: Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        for index in ingressPorts.indices {
            try await waitForIngress(index, until: deadline)
        }
        // Workers create the consumer group; wait for it so XPENDING-based checks see it.
        while expectGroup {
            let groups = try? await redis.send("XINFO", "GROUPS", stream("bookings"))
            if let groups, groups.array?.isEmpty == false { break }
            guard ContinuousClock.now < deadline else { throw TestSetupError("workers never created the group") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// A response: status and body text.
    public struct HTTPResult: Sendable {
        public var status: Int
        public var body: String
        public var headers: [(String, String)]

        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }

        /// The body as a JSON object.
        public var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
        }
    }

    /// Sends one request to ingress number `ingress`.
    public func request(
        _ method: HTTPMethod, _ path: String, ingress: Int = 0, headers: [(String, String)] = [], body: String? = nil
    ) async throws -> HTTPResult {
        var request = HTTPClientRequest(url: ingressURL(ingress) + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return HTTPResult(
            status: Int(response.status.code), body: String(buffer: bytes),
            headers: response.headers.map { ($0.name, $0.value) })
    }

    /// Sends one request whose body is raw bytes (not necessarily UTF-8).
    public func request(
        _ method: HTTPMethod, _ path: String, ingress: Int = 0, headers: [(String, String)] = [], bytes: [UInt8]
    ) async throws -> HTTPResult {
        var request = HTTPClientRequest(url: ingressURL(ingress) + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: bytes))
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        return HTTPResult(
            status: Int(response.status.code), body: String(buffer: body),
            headers: response.headers.map { ($0.name, $0.value) })
    }

    /// `GET` of any URL (a role's metrics endpoint, say).
    public func fetch(_ url: String) async throws -> HTTPResult {
        let response = try await http.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 4 << 20)
        return HTTPResult(
            status: Int(response.status.code), body: String(buffer: bytes),
            headers: response.headers.map { ($0.name, $0.value) })
    }

    /// `POST /v1/bookings`.
    public func book(requestID: String, userID: Int64, slotID: Int64, ingress: Int = 0) async throws -> HTTPResult {
        try await request(
            .POST, "/v1/bookings", ingress: ingress,
            headers: [("Authorization", "Bearer \(Self.apiToken)"), ("Content-Type", "application/json")],
            body: #"{"request_id":"\#(requestID)","user_id":\#(userID),"slot_id":\#(slotID)}"#)
    }

    /// `POST /telegram/webhook` with a callback query.
    public func telegramCallback(updateID: Int64, userID: Int64, data: String, ingress: Int = 0) async throws
        -> HTTPResult
    {
        try await request(
            .POST, "/telegram/webhook", ingress: ingress,
            headers: [("X-Telegram-Bot-Api-Secret-Token", Self.telegramSecret), ("Content-Type", "application/json")],
            body: """
                {"update_id":\(updateID),"callback_query":{"id":"cb\(updateID)","from":{"id":\(userID)},\
                "message":{"message_id":\(updateID),"chat":{"id":\(userID)}},"data":"\(data)"}}
                """)
    }

    /// Polls `GET /v1/bookings/<id>` until it is no longer `pending` (or the deadline passes).
    public func outcome(of requestID: String, ingress: Int = 0, timeout: Duration = .seconds(120)) async throws
        -> String
    {
        let deadline = ContinuousClock.now + timeout
        while true {
            let result = try await request(
                .GET, "/v1/bookings/\(requestID)", ingress: ingress,
                headers: [("Authorization", "Bearer \(Self.apiToken)")])
            let status = result.json?["status"] as? String ?? "http \(result.status)"
            if status != "pending" || ContinuousClock.now >= deadline { return status }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// `leasehold slots sync --generate count --users users` against this stack's database;
    /// returns the slot IDs.
    public func seed(slots count: Int, users: Int) async throws -> [Int64] {
        let result = try await LeaseholdExecutable.run(
            [
                "slots", "sync", "--generate", String(count), "--users", String(users), "--json", "--start",
                "2030-01-01T09:00:00Z",
            ],
            in: directory, environment: environment)
        guard result.status == 0 else { throw TestSetupError("slots sync failed:\n\(result.output)") }
        let line = result.output.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
        let report = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        return (report?["slotIDs"] as? [NSNumber])?.map(\.int64Value) ?? []
    }

    /// Entries on the streams of `source` (`XLEN`, added up over the shards).
    public func streamLength(_ source: String) async throws -> Int {
        var total = 0
        for stream in keys.streams(source) { total += Int(try await redis.send("XLEN", stream).int ?? 0) }
        return total
    }

    /// Lines of the PostgreSQL server log containing `text`; `nil` when `POSTGRES_LOG` is not set.
    public static func postgresLogLines(containing text: String) -> [String]? {
        guard let path = ProcessInfo.processInfo.environment["POSTGRES_LOG"],
            let log = try? String(contentsOfFile: path, encoding: .utf8)
        else { return nil }
        return log.split(separator: "\n").filter { $0.contains(text) }.map(String.init)
    }

    /// Entries delivered but not acknowledged, on the streams of `source`.
    public func pendingCount(_ source: String) async throws -> Int {
        var total = 0
        for stream in keys.streams(source) {
            let reply = try await redis.send("XPENDING", stream, "workers")
            total += Int(reply.array?.first?.int ?? 0)
        }
        return total
    }

    /// Entries not yet handled on the streams of `source`: delivered and not acknowledged, plus
    /// not yet delivered to the `workers` group (its lag). Zero once every entry written so far
    /// is done with.
    public func unhandledCount(_ source: String) async throws -> Int {
        var total = 0
        streams: for stream in keys.streams(source) {
            let groups = try await redis.send("XINFO", "GROUPS", stream)
            for group in groups.array ?? [] {
                guard let fields = group.fieldMap, fields["name"]?.string == "workers" else { continue }
                total += Int((fields["pending"]?.int ?? 0) + (fields["lag"]?.int ?? 0))
                continue streams
            }
            total += Int(try await redis.send("XLEN", stream).int ?? 0)  // no group yet: nothing was delivered
        }
        return total
    }

    /// Stops every process (SIGTERM to all, then SIGKILL to those still running after 30 s), drops
    /// the database and deletes the stack's Redis keys. Returns the processes' exit statuses by name.
    @discardableResult
    public func shutdown() async -> [String: Int32] {
        stopped.withLock { $0 = true }
        let statuses = await processes.stopAll(timeout: .seconds(30))
        try? await http.shutdown()
        await postgres.close()
        await withTaskExecutorPreference(workerPostgres.reactor) { [workerPostgres, workerRedis] in
            workerRedis.close()
            await workerPostgres.close()
        }
        workerPostgres.reactor.shutDown()
        try? await database.drop()
        await redis.deleteKeys(withPrefix: prefix)
        redis.close()
        return statuses
    }

    /// Lines of the PostgreSQL server log (`POSTGRES_LOG`, set by `.ci/servers`) that report a
    /// unique violation of Leasehold's own tables; `nil` when the log is not available.
    public static func duplicateKeyErrorsInPostgresLog() -> [String]? {
        guard let path = ProcessInfo.processInfo.environment["POSTGRES_LOG"],
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        else { return nil }
        let ours = ["interviews_one_active_per_slot", "inbox_pkey", "users_pkey", "interviews_pkey", "time_slots"]
        return text.split(separator: "\n").filter { line in
            line.contains("duplicate key") && ours.contains { line.contains($0) }
        }.map(String.init)
    }
}
