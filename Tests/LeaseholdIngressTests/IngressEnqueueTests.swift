import Foundation
import Hummingbird
import LeaseholdIngress
import LeaseholdLocalStack
import LeaseholdQueue
import LeaseholdReactor
import LeaseholdRedis
import LeaseholdTesting
import Logging
import Prometheus
import ServiceLifecycle
import Testing

/// Ingress in this process, on a reactor of its own, against the real Redis: concurrent bookings
/// share pipelines and each is answered 202 only once its entry is in the stream; a reused key is
/// refused with 409; with Redis unreachable every answer is a 503 that says nothing was enqueued.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct IngressEnqueueTests {
    /// Runs ingress on a free port with keys under a fresh prefix, calls `body` with its base URL
    /// and the prefix, then stops it and deletes the prefix's keys.
    static func withIngress(
        redis: RedisConfiguration? = nil, _ body: @escaping @Sendable (String, RedisKeys) async throws -> Void
    ) async throws {
        try await withIngress(redis: redis) { base, keys, _ in try await body(base, keys) }
    }

    /// The same, and `body` also gets the reactor the request handlers and Redis run on.
    /// `keys`: the key layout (default: a new prefix); `configure` changes the configuration
    /// before the application is built (a flood limit, trusted proxies).
    static func withIngress(
        redis: RedisConfiguration? = nil, keys: RedisKeys? = nil,
        configure: (inout IngressConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (String, RedisKeys, Reactor) async throws -> Void
    ) async throws {
        let port = try freeLoopbackPort()
        let keys = keys ?? RedisKeys(prefix: IntegrationEnvironment.uniqueName("lh_test") + ":")
        var configuration = IngressConfiguration(
            host: "127.0.0.1", port: port, keys: keys, telegramSecret: ProcessStack.telegramSecret,
            apiToken: ProcessStack.apiToken)
        configure(&configuration)
        let reactor = Reactor(label: "test.ingress")
        let client = RedisClient(
            configuration: try redis ?? IntegrationEnvironment.redisConfiguration(), reactor: reactor)
        let app = buildIngressApplication(
            configuration: configuration, redis: client, registry: PrometheusCollectorRegistry(),
            logger: Logger(label: "test.ingress"))
        // Stopped by a graceful shutdown, as a role is: cancelling the task instead races a
        // connection being accepted (NIO's async writer then traps in its deinit).
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [], logger: Logger(label: "test.ingress")))
        let server = Task(executorPreference: reactor) { try await group.run() }
        let base = "http://127.0.0.1:\(port)"
        let http = BookingClient(baseURL: base)
        var outcome: Result<Void, any Error> = .success(())
        do {
            let deadline = ContinuousClock.now + .seconds(20)
            while !(await http.isHealthy()) {
                guard ContinuousClock.now < deadline else { throw TestSetupError("ingress did not start on \(base)") }
                try await Task.sleep(for: .milliseconds(50))
            }
            try await body(base, keys, reactor)
        } catch {
            outcome = .failure(error)
        }
        await http.shutdown()
        await group.triggerGracefulShutdown()
        _ = await server.result
        await withTaskExecutorPreference(reactor) { client.close() }
        reactor.shutDown()
        let cleaner = try IntegrationEnvironment.redisClient(size: 1)
        _ = try? await cleaner.send("DEL", keys.stream("bookings"))
        cleaner.close()
        try outcome.get()
    }

    @Test("200 concurrent bookings: each 202 has its entry and its pending marker in Redis")
    func concurrentBookingsAreEnqueued() async throws {
        try await Self.withIngress { base, keys in
            let run = IntegrationEnvironment.uniqueName("r")
            let statuses = try await BookingClient.with(baseURL: base) { (http: BookingClient) async throws in
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for index in 0..<200 {
                        group.addTask {
                            try await http.book(requestID: "\(run)-\(index)", userID: Int64(index + 1), slotID: 7)
                        }
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
            }
            #expect(statuses == Array(repeating: 202, count: 200))
            let redis = try IntegrationEnvironment.redisClient(size: 1)
            #expect(try await redis.send("XLEN", keys.stream("bookings")) == .integer(200))
            let marker = try await redis.send("GET", keys.result("\(run)-7"))
            #expect(marker.string?.contains(#""status":"pending""#) == true)
            let keysToDelete: [any RedisArgument] = (0..<200).flatMap {
                [keys.result("\(run)-\($0)"), keys.requestDigest("\(run)-\($0)")]
            }
            try await redis.send(RedisCommand(["DEL"] + keysToDelete))
            redis.close()
        }
    }

    @Test("the same request_id with another slot is refused with 409 and enqueues nothing")
    func reusedKeyIsRefused() async throws {
        try await Self.withIngress { base, keys in
            let id = IntegrationEnvironment.uniqueName("r")
            try await BookingClient.with(baseURL: base) { (http: BookingClient) async throws in
                #expect(try await http.book(requestID: id, userID: 1, slotID: 1) == 202)
                #expect(try await http.book(requestID: id, userID: 1, slotID: 1) == 202)
                #expect(try await http.book(requestID: id, userID: 1, slotID: 2) == 409)
            }
            let redis = try IntegrationEnvironment.redisClient(size: 1)
            #expect(try await redis.send("XLEN", keys.stream("bookings")) == .integer(2))
            try await redis.send("DEL", keys.result(id), keys.requestDigest(id))
            redis.close()
        }
    }

    @Test("Redis unreachable: every booking is answered 503, and ingress keeps serving")
    func unreachableRedisIsRefused() async throws {
        var configuration = try IntegrationEnvironment.redisConfiguration()
        configuration.port = try freeLoopbackPort()
        try await Self.withIngress(redis: configuration) { base, _ in
            try await BookingClient.with(baseURL: base) { (http: BookingClient) async throws in
                for attempt in 0..<3 {
                    let status = try await http.book(requestID: "x-\(attempt)", userID: 1, slotID: 1)
                    #expect(status == 503)
                }
                #expect(await http.isHealthy())
            }
        }
    }
}
