import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdRedis

/// Where integration tests find PostgreSQL and Redis, and whether they must.
///
/// Reads `POSTGRES_URL` and `REDIS_URL` (localhost defaults). With `REQUIRE_INTEGRATION=1` (as in
/// CI) an unreachable server **fails** the test instead of skipping it, so a broken CI set-up can
/// never pass by running nothing.
public enum IntegrationEnvironment {
    public static var postgresURL: String {
        ProcessInfo.processInfo.environment["POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/leasehold"
    }

    public static var redisURL: String {
        ProcessInfo.processInfo.environment["REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
    }

    /// `REQUIRE_INTEGRATION=1`: the servers must be there.
    public static var isRequired: Bool {
        ProcessInfo.processInfo.environment["REQUIRE_INTEGRATION"] == "1"
    }

    /// Whether to run integration tests: always when required (an unreachable server then fails
    /// the test), otherwise only when both servers answer. For `@Suite(.enabled(if: …))`.
    public static let isAvailable: Bool = {
        if isRequired { return true }
        let postgres = postgresConfiguration.serverAcceptsConnections()
        let redis =
            (try? RedisConfiguration(url: redisURL)).map { configuration in
                let client = RedisClient(configuration: configuration, label: "leasehold.tests.probe")
                defer { client.close() }
                return (try? client.sendWaiting(RedisCommand(["PING"]))) != nil
            } ?? false
        return postgres && redis
    }()

    /// Whether tests may start servers of their own (``LeaseholdLocalStack/LocalStack``): always when
    /// integration is required, otherwise when Debian's PostgreSQL and Redis servers are installed.
    public static let serverBinariesInstalled: Bool =
        isRequired
        || (FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server")
            && !((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []).isEmpty)

    public static var postgresConfiguration: PostgresConfiguration {
        PostgresConfiguration(
            connectionString: postgresURL, connectTimeoutSeconds: 5, applicationName: "leasehold-tests")
    }

    public static func redisConfiguration() throws -> RedisConfiguration {
        try RedisConfiguration(url: redisURL)
    }

    /// A pooled client for the test server; close it at the end of the test.
    public static func postgresClient(size: Int = 4) -> PostgresClient {
        PostgresClient(configuration: postgresConfiguration, size: size)
    }

    public static func redisClient(size: Int = 4) throws -> RedisClient {
        RedisClient(configuration: try redisConfiguration(), size: size)
    }

    /// A name unique to this test run, for tables, schemas and Redis key prefixes, so tests running
    /// in parallel never see each other's data.
    public static func uniqueName(_ prefix: String = "t") -> String {
        "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
    }
}

extension LocalRedisCluster {
    /// Whether cluster tests can run: always under `REQUIRE_INTEGRATION=1` (missing binaries then
    /// fail the test), otherwise when `redis-server` and `redis-cli` are installed. For
    /// `@Suite(.enabled(if: …))`.
    public static let isAvailable: Bool =
        IntegrationEnvironment.isRequired
        || (FileManager.default.isExecutableFile(atPath: redisServer.path)
            && FileManager.default.isExecutableFile(atPath: redisCLI.path))
}
