import LeaseholdRedis

/// A Redis lease: `SET key owner NX PX ttl`, renewed by compare-and-expire, released by
/// compare-and-delete, so only the holder can extend or drop it.
///
/// A lease is a guard, not the lock: it keeps two workers from doing the same work at once and
/// keeps the supervisor from reclaiming a slow-but-alive worker's entry. Correctness never depends
/// on it: if it expires under a paused worker, the inbox row in PostgreSQL still makes the second
/// attempt a no-op.
///
/// Renewing also resets the idle time of the stream entry the lease guards (see
/// ``renew(resetting:consumer:group:on:)``), so an entry whose transaction runs longer than the
/// supervisor's visibility timeout never even looks stalled.
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

    // KEYS: lease, stream. ARGV: owner, ttl (ms), group, consumer, entry id.
    // While the lease is ours: extend it and, if the entry is still pending on this consumer,
    // XCLAIM it to the same consumer with min-idle-time 0 and JUSTID, which sets its idle time to
    // 0 without counting a delivery. An entry the supervisor claimed (possible only while the
    // lease was not held) or that was acknowledged is left alone; pcall keeps a vanished group
    // from failing the renewal. The two keys hash to different slots: fine on one Redis node (the
    // supported set-up); a Redis Cluster would need them under one hash tag.
    static let renewScript = RedisScript(
        """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        local pending = redis.pcall('XPENDING', KEYS[2], ARGV[3], ARGV[5], ARGV[5], 1)
        if type(pending) == 'table' and pending[1] and pending[1][2] == ARGV[4] then
            redis.call('XCLAIM', KEYS[2], ARGV[3], ARGV[4], 0, ARGV[5], 'JUSTID')
        end
        return 1
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

    /// Extends the lease by its TTL if this owner still holds it, and in the same script resets the
    /// idle time of `entry` (pending on `consumer` in `group`), so that the supervisor, which only
    /// looks at entries idle longer than its visibility timeout, never sees a live worker's entry
    /// as stalled however long its transaction runs. The delivery count is not changed.
    ///
    /// `false` means the lease was lost (expired and possibly taken by someone else); then the
    /// entry is not touched either.
    public func renew(
        resetting entry: StreamEntry, consumer: String, group: String = RedisKeys.consumerGroup,
        on connection: RedisConnection
    ) throws(RedisError) -> Bool {
        try connection.evaluate(
            Self.renewScript, keys: [key, entry.stream],
            arguments: [owner, ttlMilliseconds, group, consumer, entry.id]
        ).int == 1
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
