import Foundation
import LeaseholdTesting
import Testing

extension UnitTests {
    /// `LEASEHOLD_REDIS_SHARDS` is checked before a role touches anything.
    @Suite("Shard settings are checked at startup")
    struct ShardSettingTests {
        @Test(
            arguments: [
                (["LEASEHOLD_REDIS_SHARDS": "0"], "LEASEHOLD_REDIS_SHARDS must be between 1 and 1024, got 0"),
                (["LEASEHOLD_REDIS_SHARDS": "three"], "LEASEHOLD_REDIS_SHARDS=three is not an integer"),
                (["LEASEHOLD_REDIS_SHARDS": "2000"], "LEASEHOLD_REDIS_SHARDS must be between 1 and 1024, got 2000"),
                (
                    ["REDIS_URL": "redis://127.0.0.1:1,127.0.0.1:2/0"],
                    "REDIS_URL lists several nodes (a Redis Cluster): set LEASEHOLD_REDIS_SHARDS"
                ),
            ])
        func aBadSettingStopsEveryRoleWithItsName(environment: [String: String], expected: String) async throws {
            for role in ["ingress", "worker", "supervisor", "status"] {
                var settings = environment
                settings["POSTGRES_URL"] = "postgres://nobody@127.0.0.1:1/none"
                settings["REDIS_URL"] = settings["REDIS_URL"] ?? "redis://127.0.0.1:1/0"
                let result = try await LeaseholdExecutable.run(
                    [role], in: try makeTemporaryDirectory("shards"), environment: settings, timeout: .seconds(30))
                #expect(result.status == 64, "\(role): \(result.output)")
                #expect(result.output.contains(expected), "\(role): \(result.output)")
            }
        }
    }
}
