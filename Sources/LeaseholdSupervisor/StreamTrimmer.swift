import LeaseholdQueue
import LeaseholdRedis

/// Trims acknowledged entries from a stream, never past the oldest pending or undelivered one.
///
/// Redis 7.0 has no `XTRIM … KEEPREF` (trimming that spares pending entries), so the bound is computed here:
/// `MINID = min(oldest pending ID, the ID right after the group's last-delivered ID)`. Everything
/// below it was delivered and acknowledged. Without the group (no worker ever ran), nothing is trimmed.
struct StreamTrimmer: Sendable {
    let redis: RedisClient

    /// Returns how many entries were removed.
    func trim(stream: String) async throws -> Int {
        guard let lastDelivered = try await ConsumerGroupInfo.read(stream: stream, redis: redis)?.lastDeliveredID
        else { return 0 }
        var bound = Self.successor(of: lastDelivered)
        let summary = try await redis.send("XPENDING", stream, RedisKeys.consumerGroup)
        if let parts = summary.array, parts.count >= 2, let oldest = parts[1].string,
            Self.compare(oldest, bound) < 0
        {
            bound = oldest
        }
        return Int(try await redis.send("XTRIM", stream, "MINID", bound).int ?? 0)
    }

    /// The smallest stream ID greater than `id` (`ms-seq` → `ms-(seq+1)`).
    static func successor(of id: String) -> String {
        let parts = id.split(separator: "-")
        guard parts.count == 2, let ms = UInt64(parts[0]), let seq = UInt64(parts[1]) else { return id }
        return seq == .max ? "\(ms + 1)-0" : "\(ms)-\(seq + 1)"
    }

    /// Orders stream IDs numerically.
    static func compare(_ a: String, _ b: String) -> Int {
        func parse(_ id: String) -> (UInt64, UInt64) {
            let parts = id.split(separator: "-")
            return (UInt64(parts.first ?? "") ?? 0, UInt64(parts.count > 1 ? parts[1] : "") ?? 0)
        }
        let (x, y) = (parse(a), parse(b))
        return x == y ? 0 : (x < y ? -1 : 1)
    }
}
