import LeaseholdRedis

/// A Redis lease: `SET key owner NX PX ttl`, renewed by compare-and-expire, released by
/// compare-and-delete, so only the holder can extend or drop it.
///
/// A lease is a guard, not the lock (ARCHITECTURE.md, guarantee 4): it keeps two workers from doing the
/// same work at once and keeps the supervisor from reclaiming a slow-but-alive worker's entry.
/// Correctness never depends on it: if it expires under a paused worker, the inbox row in
/// PostgreSQL still makes the second attempt a no-op.
public struct Lease: Sendable, Equatable {
    /// The Redis key, `lh:lease:<message key>`.
    public let key: String
    /// Who holds it: consumer name and a random token, unique per acquisition.
    public let owner: String
    public let ttl: Duration

    public init(key: String, owner: String, ttl: Duration) {
        self.key = key
        self.owner = owner
        self.ttl = ttl
    }

    static let renewScript = RedisScript(
        """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return 0
        """)

    static let releaseScript = RedisScript(
        """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0
        """)

    var ttlMilliseconds: Int64 { ttl.redisMilliseconds }

    /// Takes the lease if nobody holds it. `false` means someone else does.
    public func acquire(on connection: RedisConnection) throws(RedisError) -> Bool {
        try connection.send("SET", key, owner, "NX", "PX", ttlMilliseconds) != .null
    }

    /// Extends the lease by its TTL if this owner still holds it. `false` means it was lost
    /// (expired and possibly taken by someone else).
    public func renew(on connection: RedisConnection) throws(RedisError) -> Bool {
        try connection.evaluate(Self.renewScript, keys: [key], arguments: [owner, ttlMilliseconds]).int == 1
    }

    /// Drops the lease if this owner still holds it; never deletes someone else's.
    @discardableResult
    public func release(on connection: RedisConnection) throws(RedisError) -> Bool {
        try connection.evaluate(Self.releaseScript, keys: [key], arguments: [owner]).int == 1
    }

    /// Who holds `key` now, if anyone.
    public static func holder(of key: String, on connection: RedisConnection) throws(RedisError) -> String? {
        try connection.send("GET", key).string
    }
}
