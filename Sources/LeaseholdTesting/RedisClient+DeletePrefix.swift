import LeaseholdRedis

extension RedisClient {
    /// Deletes every key starting with `prefix` (SCAN + DEL): a test's Redis namespace, at its end.
    public func deleteKeys(withPrefix prefix: String) async {
        var cursor = "0"
        repeat {
            guard let reply = try? await send("SCAN", cursor, "MATCH", "\(prefix)*", "COUNT", 1000),
                let parts = reply.array, parts.count == 2
            else { break }
            cursor = parts[0].string ?? "0"
            let keys = parts[1].array?.compactMap(\.string) ?? []
            if !keys.isEmpty { _ = try? await send(RedisCommand(["DEL"] + keys)) }
        } while cursor != "0"
    }
}
