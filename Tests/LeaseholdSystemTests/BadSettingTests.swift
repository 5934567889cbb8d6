import Foundation
import LeaseholdRedis
import LeaseholdTesting
import Testing

extension SystemTests {
    /// A malformed or out-of-range setting stops a role at startup, exit status 64, with an error
    /// naming the variable, before it touches Redis: nothing appears under the role's key prefix
    /// (a worker would have made its consumer group's streams, a supervisor its leader lease).
    @Suite("A bad setting stops a role before it changes anything")
    struct BadSettingTests {
        static let token = "123456789:AAE-secret_part_0123456789abcdefghij"

        @Test(
            arguments: [
                ("ingress", ["LEASEHOLD_INGRESS_PORT": "80x"], "LEASEHOLD_INGRESS_PORT=80x is not an integer"),
                (
                    "ingress", ["LEASEHOLD_API_FLOOD_BURST": "0"],
                    "LEASEHOLD_API_FLOOD_BURST must be between 1 and 1000000, got 0"
                ),
                (
                    "ingress", ["LEASEHOLD_TELEGRAM_FLOOD_RATE": "fast"],
                    "LEASEHOLD_TELEGRAM_FLOOD_RATE=fast is not an integer"
                ),
                (
                    "worker", ["LEASEHOLD_WORKER_CONCURRENCY": "0"],
                    "LEASEHOLD_WORKER_CONCURRENCY must be between 1 and 1024, got 0"
                ),
                (
                    "worker", ["LEASEHOLD_ONE_BOOKING_PER_USER": "maybe"],
                    "LEASEHOLD_ONE_BOOKING_PER_USER=maybe must be true or false"
                ),
                (
                    "supervisor", ["LEASEHOLD_LEADER_TTL_MS": "299"],
                    "LEASEHOLD_LEADER_TTL_MS must be between 300 and 600000, got 299"
                ),
                (
                    "supervisor", ["LEASEHOLD_RETRY_MAX_ATTEMPTS": "1001"],
                    "LEASEHOLD_RETRY_MAX_ATTEMPTS must be between 1 and 1000, got 1001"
                ),
                (
                    "notifier", ["LEASEHOLD_NOTIFIER_RATE": "fast", "TELEGRAM_BOT_TOKEN": token],
                    "LEASEHOLD_NOTIFIER_RATE=fast is not an integer"
                ),
                (
                    "console", ["LEASEHOLD_CONSOLE_SESSION_HOURS": "721", "LEASEHOLD_CONSOLE_TOKEN": "secret"],
                    "LEASEHOLD_CONSOLE_SESSION_HOURS must be between 1 and 720, got 721"
                ),
            ])
        func refusedBeforeAnythingChanges(role: String, settings: [String: String], expected: String) async throws {
            let prefix = IntegrationEnvironment.uniqueName("bad") + ":"
            var environment = settings
            environment["LEASEHOLD_REDIS_PREFIX"] = prefix
            environment["POSTGRES_URL"] = IntegrationEnvironment.postgresURL
            environment["REDIS_URL"] = IntegrationEnvironment.redisURL
            let result = try await LeaseholdExecutable.run(
                [role], in: try makeTemporaryDirectory("bad-setting"), environment: environment,
                timeout: .seconds(60))
            #expect(result.status == 64, "\(role): \(result.output)")
            #expect(result.output.contains(expected), "\(role): \(result.output)")

            let redis = try IntegrationEnvironment.redisClient(size: 1)
            defer { redis.close() }
            var keys: [String] = []
            var cursor = "0"
            repeat {
                let reply = try await redis.send("SCAN", cursor, "MATCH", prefix + "*", "COUNT", 1000)
                let parts = try #require(reply.array, "SCAN answered \(reply)")
                try #require(parts.count == 2)
                cursor = try #require(parts[0].string)
                keys += (parts[1].array ?? []).compactMap(\.string)
            } while cursor != "0"
            #expect(keys.isEmpty, "\(role) wrote \(keys) before refusing its setting")
        }
    }
}
