import LeaseholdQueue
import LeaseholdRedis

/// A client and a key layout under a prefix unique to one test (`lhs_xxxxxxxx:`). Tests run in
/// parallel against one server, so each writes only under its own prefix, and every key under it
/// is deleted at the end (never `FLUSHALL`).
public enum RedisTestKeys {
    public static func withKeys<T>(size: Int = 4, _ body: (RedisClient, RedisKeys) async throws -> T) async throws
        -> T
    {
        let client = try IntegrationEnvironment.redisClient(size: size)
        let keys = RedisKeys(prefix: IntegrationEnvironment.uniqueName("lhs") + ":")
        do {
            let value = try await body(client, keys)
            try await deleteKeys(under: keys.prefix, using: client)
            client.close()
            return value
        } catch {
            try? await deleteKeys(under: keys.prefix, using: client)
            client.close()
            throw error
        }
    }

    /// Deletes every key starting with `prefix` (which holds no glob characters).
    static func deleteKeys(under prefix: String, using client: RedisClient) async throws {
        var cursor = "0"
        repeat {
            let reply = try await client.send("SCAN", cursor, "MATCH", prefix + "*", "COUNT", 1000)
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let found = parts[1].array
            else { throw RedisError(source: .client, code: .proto, message: "unexpected SCAN reply \(reply)") }
            let names: [any RedisArgument] = found.compactMap(\.bytes)
            if !names.isEmpty { try await client.send(RedisCommand(["DEL"] + names)) }
            cursor = next
        } while cursor != "0"
    }
}
