import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// The embedded default, and the wrappers' recovery when the servers restart under them. These
/// tests start their own PostgreSQL and Redis (from the installed Debian binaries), so restarting
/// them disturbs no other test.
@Suite("Embedded local stack", .enabled(if: IntegrationEnvironment.serverBinariesInstalled))
struct LocalStackTests {
    /// Retries `body` while it fails with a retryable error: the one call in flight during a
    /// restart may fail (with a retryable error); the ones after it must succeed.
    private func eventually<T>(
        _ what: String, attempts: Int = 50, _ body: () async throws -> T
    ) async throws -> (value: T, failures: [String]) {
        var failures: [String] = []
        for _ in 0..<attempts {
            do {
                return (try await body(), failures)
            } catch let error as PostgresError where error.isRetryable {
                failures.append("\(error)")
            } catch let error as RedisError where error.isRetryable {
                failures.append("\(error)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSetupError("\(what) kept failing: \(failures)")
    }

    @Test func queriesKeepWorkingAfterPostgresAndRedisRestartUnderThem() async throws {
        let directory = try makeTemporaryDirectory("stack")
        let stack = try LocalStack(options: LocalStackOptions(directory: directory, postgresSettings: ["fsync": "off"]))
        try await stack.start()

        let postgres = PostgresClient(
            configuration: PostgresConfiguration(connectionString: stack.postgresURL), size: 4)
        let redis = RedisClient(configuration: try RedisConfiguration(url: stack.redisURL), size: 4)
        try await postgres.query("CREATE TABLE kept (id bigint PRIMARY KEY)")
        try await postgres.query("INSERT INTO kept VALUES (1)")
        try await redis.send("SET", "kept", "before-restart")
        let pidBefore = try await postgres.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)

        // PostgreSQL restarts under the open pool: the pool's connections now point at a dead
        // backend; they must be replaced, not reused.
        try await stack.restartPostgres()
        let (count, pgFailures) = try await eventually("SELECT after restart") {
            try await postgres.query("SELECT count(*) FROM kept").single().decode(Int64.self, at: 0)
        }
        #expect(count == 1)
        #expect(pgFailures.count <= 1, "at most the call in flight fails: \(pgFailures)")
        let pidAfter = try await postgres.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
        #expect(pidAfter != pidBefore, "a new backend serves the pool after the restart")
        // Every pooled connection recovers, not just one.
        try await withThrowingTaskGroup(of: Int64.self) { group in
            for value in 0..<Int64(16) {
                group.addTask {
                    try await self.eventually("parallel SELECT") {
                        try await postgres.query("SELECT \(value)::bigint").single().decode(Int64.self, at: 0)
                    }.value
                }
            }
            var seen: Set<Int64> = []
            for try await value in group { seen.insert(value) }
            #expect(seen == Set(0..<16))
        }

        // Redis restarts (AOF keeps the key); the idle contexts are replaced.
        try await stack.restartRedis()
        let (value, redisFailures) = try await eventually("GET after restart") {
            try await redis.send("GET", "kept").string
        }
        #expect(value == "before-restart")
        #expect(redisFailures.count <= 1, "at most the call in flight fails: \(redisFailures)")
        let pings = try await withThrowingTaskGroup(of: String?.self) { group in
            for _ in 0..<16 {
                group.addTask { try await self.eventually("PING") { try await redis.send("PING").string }.value }
            }
            return try await group.reduce(into: [String?]()) { $0.append($1) }
        }
        #expect(pings.allSatisfy { $0 == "PONG" })

        await postgres.close()
        redis.close()
        await stack.stop()
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func leaseholdLocalStartsMigratesAndStopsCleanlyOnSignal(_ signal: Int32) async throws {
        let directory = try makeTemporaryDirectory("local")
        let process = try LeaseholdExecutable.start(
            [
                "local", "--dir", directory.appendingPathComponent("data").path,
                "--migrations", LeaseholdExecutable.migrationsDirectory.path,
            ],
            name: "local", in: directory)
        let deadline = ContinuousClock.now + .seconds(120)
        while !process.output.contains("ready;") {
            #expect(process.isRunning, "leasehold local exited early:\n\(process.output)")
            guard process.isRunning, ContinuousClock.now < deadline else { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        let lines = process.output.split(separator: "\n")
        let postgresURL = try #require(lines.first { $0.hasPrefix("POSTGRES_URL=") }?.dropFirst("POSTGRES_URL=".count))
        let redisURL = try #require(lines.first { $0.hasPrefix("REDIS_URL=") }?.dropFirst("REDIS_URL=".count))

        // Both servers answer, and the schema is migrated.
        let postgres = try await PostgresSession.open(PostgresConfiguration(connectionString: String(postgresURL)))
        let version = try await postgres.query("SELECT max(version) FROM schema_migrations").single().decode(
            Int64.self, at: 0)
        #expect(version >= 1)
        await postgres.close()
        let redis = RedisClient(configuration: try RedisConfiguration(url: String(redisURL)))
        #expect(try await redis.send("PING").string == "PONG")
        redis.close()

        process.send(signal)
        #expect(await process.waitForExit(timeout: .seconds(60)))
        #expect(process.exitStatus == 0, "\(process.output)")
        // Both servers are gone: nothing accepts connections on their ports any more.
        await #expect(throws: PostgresError.self) {
            try await PostgresSession.open(
                PostgresConfiguration(
                    connectionString: String(postgresURL), connectTimeoutSeconds: 2))
        }
        let gone = RedisClient(configuration: try RedisConfiguration(url: String(redisURL)))
        defer { gone.close() }
        await #expect(throws: RedisError.self) { try await gone.send("PING") }
    }
}
