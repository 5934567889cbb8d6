import LeaseholdRedis
import LeaseholdTesting

/// Clients and per-test key prefixes for the integration suites. Tests run in parallel against one
/// server, so every test writes only under its own prefix, and everything under it is deleted at
/// the end (never `FLUSHDB`).
enum RedisFixture {
    /// Runs `body` with a new client (on a reactor of its own) and a unique key prefix (`lh_test_xxxxxxxx:`), then
    /// deletes every key under the prefix and closes the client.
    static func withClient<T>(
        size: Int = 4, configure: (inout RedisConfiguration) -> Void = { _ in },
        _ body: (RedisClient, String) async throws -> T
    ) async throws -> T {
        var configuration = try IntegrationEnvironment.redisConfiguration()
        configure(&configuration)
        let client = RedisClient(configuration: configuration, size: size, label: "test.redis")
        let prefix = IntegrationEnvironment.uniqueName("lh_test") + ":"
        do {
            let value = try await body(client, prefix)
            client.close()
            try await deleteKeys(under: prefix)
            return value
        } catch {
            client.close()
            try? await deleteKeys(under: prefix)
            throw error
        }
    }

    /// Deletes every key under `prefix` through a client with the default configuration (the
    /// test's own may have a deliberately short timeout or another database).
    static func deleteKeys(under prefix: String) async throws {
        let cleaner = try IntegrationEnvironment.redisClient(size: 1)
        defer { cleaner.close() }
        try await deleteKeys(under: prefix, using: cleaner)
    }

    /// Deletes every key starting with `prefix` (which must hold no glob characters).
    static func deleteKeys(under prefix: String, using client: some RedisCommandRunner) async throws {
        var cursor = "0"
        repeat {
            let reply = try await client.send(
                RedisCommand(["SCAN", cursor, "MATCH", prefix + "*", "COUNT", 1000]), timeout: nil)
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let keys = parts[1].array
            else { throw RedisError(source: .client, code: .proto, message: "unexpected SCAN reply \(reply)") }
            let names: [any RedisArgument] = keys.compactMap(\.bytes)
            if !names.isEmpty { _ = try await client.send(RedisCommand(["DEL"] + names), timeout: nil) }
            cursor = next
        } while cursor != "0"
    }

    /// The value or error of `body`, for tests that expect some of several concurrent calls to fail.
    static func outcome<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
        do {
            return .success(try await body())
        } catch {
            return .failure(error)
        }
    }

    /// The field `name` of a `CLIENT INFO` / `CLIENT LIST` line (`id=7 addr=… db=0 …`).
    static func clientInfo(_ field: String, in reply: RedisValue) -> String? {
        reply.string?.split(whereSeparator: \.isWhitespace).lazy
            .compactMap { pair -> String? in
                let parts = pair.split(separator: "=", maxSplits: 1)
                return parts.count == 2 && parts[0] == field ? String(parts[1]) : nil
            }
            .first
    }
}
