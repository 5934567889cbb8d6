import AsyncHTTPClient
import Foundation
import Hummingbird
import LeaseholdConsole
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdRuntime
import LeaseholdTesting
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// A console running in this process against a fresh migrated database and a Redis prefix of its
/// own, with an HTTP client that does not follow redirects (so tests see them).
final class ConsoleTestServer: Sendable {
    static let token = "console-test-token"

    let database: TemporaryDatabase
    let postgres: PostgresClient
    let redis: RedisClient
    let keys: RedisKeys
    let port: Int
    let http: HTTPClient
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    /// One response, its body as text.
    struct Reply: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: String
        var location: String? { headers.first(name: "Location") }
    }

    /// A console on the shared test Redis, or on `redis` (which it then owns and closes) with
    /// `shards` streams per source.
    static func start(readOnly: Bool = false, redis given: RedisClient? = nil, shards: Int? = nil) async throws
        -> ConsoleTestServer
    {
        let database = try await TemporaryDatabase.create()
        let postgres = database.client(size: 4)
        _ = try await Migrator(client: postgres).migrate(
            try Migration.load(from: LeaseholdExecutable.migrationsDirectory))
        let keys = RedisKeys(prefix: "\(IntegrationEnvironment.uniqueName("lhc")):", shards: shards)
        let redis = try given ?? IntegrationEnvironment.redisClient(size: 4)
        let port = try freeLoopbackPort()
        let console = try ConsoleApplication(
            configuration: ConsoleConfiguration(
                host: "127.0.0.1", port: port, token: token, readOnly: readOnly, keys: keys),
            redis: redis, postgres: postgres, logger: Logger(label: "console-test"))
        let group = ServiceGroup(
            configuration: .init(services: [console.application()], logger: Logger(label: "console-test")))
        let task = Task { try await group.run() }
        let server = ConsoleTestServer(
            database: database, postgres: postgres, redis: redis, keys: keys, port: port, group: group, task: task)
        let deadline = ContinuousClock.now + .seconds(20)
        while (try? await server.get("/healthz"))?.status != 200 {
            guard ContinuousClock.now < deadline else { throw TestSetupError("the console did not start") }
            try await Task.sleep(for: .milliseconds(50))
        }
        return server
    }

    private init(
        database: TemporaryDatabase, postgres: PostgresClient, redis: RedisClient, keys: RedisKeys, port: Int,
        group: ServiceGroup, task: Task<Void, any Error>
    ) {
        self.database = database
        self.postgres = postgres
        self.redis = redis
        self.keys = keys
        self.port = port
        self.group = group
        self.task = task
        self.http = ConsoleHTTP.client()
    }

    func shutdown() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        try? await http.shutdown()
        await redis.deleteKeys(withPrefix: keys.prefix)
        redis.close()
        await postgres.close()
        try? await database.drop()
    }

    func get(_ path: String, cookie: String? = nil) async throws -> Reply {
        try await ConsoleHTTP(port: port, http: http).get(path, cookie: cookie)
    }

    func post(_ path: String, _ fields: [(String, String)], cookie: String? = nil) async throws -> Reply {
        try await ConsoleHTTP(port: port, http: http).post(path, fields, cookie: cookie)
    }

    /// Logs in as `name` and returns the session cookie (`name=value`).
    func login(as name: String = "Ann") async throws -> String {
        try await ConsoleHTTP(port: port, http: http).login(as: name, token: Self.token)
    }

    /// `name=value` of the cookie `name` a response sets.
    static func cookie(_ headers: HTTPHeaders, _ name: String) throws -> String {
        guard let header = headers["Set-Cookie"].first(where: { $0.hasPrefix("\(name)=") }) else {
            throw TestSetupError("no \(name) cookie in \(headers)")
        }
        return String(header.split(separator: ";")[0])
    }

    /// The value of the first hidden input `name` in a page.
    static func hiddenValue(_ name: String, in html: String) throws -> String {
        guard let range = html.range(of: "name=\"\(name)\" value=\""),
            let end = html[range.upperBound...].firstIndex(of: "\"")
        else { throw TestSetupError("no \(name) field in the page") }
        return String(html[range.upperBound..<end])
    }

    /// Inserts a dead letter as a worker would and returns its id.
    @discardableResult
    func insertDeadLetter(
        key: String, kind: String = "booking", source: String = "bookings", stream: String? = nil, payload: String,
        bytes: [UInt8]? = nil, error: String = "slot 7 does not exist"
    ) async throws -> Int64 {
        let history = #"[{"at":"2026-01-02T10:00:00Z","attempt":1,"worker":"worker-a","error":"\#(error)"}]"#
        return try await postgres.query(
            """
            INSERT INTO dead_letters (message_key, stream, entry_id, kind, payload, attempts, last_error,
                                      error_history, first_seen_at)
            VALUES (\(key), \(stream ?? keys.stream(source)), \(UUID().uuidString), \(kind), \(bytes ?? Array(payload.utf8)), 1,
                    \(error), \(PostgresJSONB(history)), now())
            RETURNING id
            """
        ).single().decode(Int64.self, at: 0)
    }
}

/// GET and form POST to a console on loopback, in this process or another, with redirects not
/// followed (so a login's cookie is seen).
struct ConsoleHTTP {
    let port: Int
    let http: HTTPClient

    /// An HTTP client that follows no redirect.
    static func client() -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func get(_ path: String, cookie: String? = nil) async throws -> ConsoleTestServer.Reply {
        try await send(.GET, path, cookie: cookie, body: nil)
    }

    func post(_ path: String, _ fields: [(String, String)], cookie: String? = nil) async throws
        -> ConsoleTestServer.Reply
    {
        try await send(.POST, path, cookie: cookie, body: ConsoleForm.encode(fields))
    }

    /// Logs in as `name` with `token` and returns the session cookie (`name=value`).
    func login(as name: String = "Ann", token: String) async throws -> String {
        let page = try await get("/login")
        let loginCookie = try ConsoleTestServer.cookie(page.headers, ConsoleSession.loginCookieName)
        let csrf = try ConsoleTestServer.hiddenValue("csrf", in: page.body)
        let reply = try await post(
            "/login", [("csrf", csrf), ("name", name), ("token", token), ("next", "")], cookie: loginCookie)
        guard reply.status == 303 else { throw TestSetupError("login answered \(reply.status): \(reply.body)") }
        return try ConsoleTestServer.cookie(reply.headers, ConsoleSession.cookieName)
    }

    /// `path` is the console's (`/dead-letters`) or a whole URL.
    private func send(_ method: HTTPMethod, _ path: String, cookie: String?, body: String?) async throws
        -> ConsoleTestServer.Reply
    {
        var request = HTTPClientRequest(url: path.hasPrefix("http") ? path : "http://127.0.0.1:\(port)\(path)")
        request.method = method
        if let cookie { request.headers.add(name: "Cookie", value: cookie) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 23)
        return .init(status: Int(response.status.code), headers: response.headers, body: String(buffer: bytes))
    }
}
