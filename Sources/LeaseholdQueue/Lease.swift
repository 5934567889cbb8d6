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
/// ``renew(resetting:consumer:group:via:)``), so an entry whose transaction runs longer than the
/// supervisor's visibility timeout never even looks stalled.
public struct Lease: Sendable, Equatable {
    /// The Redis key, ``RedisKeys/lease(_:in:)``: `lh:lease:<message key>`, or under the
    /// stream's hash tag in the sharded layout.
    public let key: String
    /// Who holds it: consumer name and a random token, unique per acquisition.
    public let owner: String
    public let ttl: Duration

    public init(key: String, owner: String, ttl: Duration) {
        self.key = key
        self.owner = owner
        self.ttl = ttl
    }

    // KEYS: lease_1, stream_1, lease_2, stream_2, … ARGV: ttl (ms), group, consumer, then
    // owner_i, entry id_i for each pair of keys. Returns one 1 (still ours: extended) or 0 (lost)
    // per lease.
    // While a lease is ours: extend it and, if its entry is still pending on this consumer,
    // XCLAIM it to the same consumer with min-idle-time 0 and JUSTID, which sets its idle time to
    // 0 without counting a delivery. An entry the supervisor claimed (possible only while the
    // lease was not held) or that was acknowledged is left alone; pcall keeps a vanished group
    // from failing the renewal. On a Redis Cluster each call names the leases of one hash slot
    // (the sharded layout keeps a lease beside its stream), see ``RedisCommandRunner/perSlot``.
    static let renewScript = RedisScript(
        """
        local held = {}
        for i = 1, #KEYS / 2 do
            local lease, stream = KEYS[2 * i - 1], KEYS[2 * i]
            local owner, id = ARGV[2 * i + 2], ARGV[2 * i + 3]
            if redis.call('GET', lease) == owner then
                redis.call('PEXPIRE', lease, ARGV[1])
                local pending = redis.pcall('XPENDING', stream, ARGV[2], id, id, 1)
                if type(pending) == 'table' and pending[1] and pending[1][2] == ARGV[3] then
                    redis.call('XCLAIM', stream, ARGV[2], ARGV[3], 0, id, 'JUSTID')
                end
                held[i] = 1
            else
                held[i] = 0
            end
        end
        return held
        """)

    // KEYS: lease keys. ARGV: ttl (ms), then one owner per key. Returns 1 (taken) or 0 (someone
    // holds it) per key.
    static let acquireScript = RedisScript(
        """
        local taken = {}
        for i, key in ipairs(KEYS) do
            if redis.call('SET', key, ARGV[i + 1], 'NX', 'PX', ARGV[1]) then taken[i] = 1 else taken[i] = 0 end
        end
        return taken
        """)

    static let releaseScript = RedisScript(
        """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0
        """)

    var ttlMilliseconds: Int64 { ttl.redisMilliseconds }

    /// Extends the lease by its TTL if this owner still holds it, and in the same script resets the
    /// idle time of `entry` (pending on `consumer` in `group`), so that the supervisor, which only
    /// looks at entries idle longer than its visibility timeout, never sees a live worker's entry
    /// as stalled however long its transaction runs. The delivery count is not changed.
    ///
    /// `false` means the lease was lost (expired and possibly taken by someone else); then the
    /// entry is not touched either.
    public func renew(
        resetting entry: StreamEntry, consumer: String, group: String = RedisKeys.consumerGroup,
        via runner: some RedisCommandRunner
    ) async throws -> Bool {
        try await Self.renew([(self, entry)], consumer: consumer, group: group, via: runner) == [true]
    }

    /// ``renew(resetting:consumer:group:via:)`` for many leases in one script call (one per hash
    /// slot on a cluster): one `Bool` per lease, `false` where it was lost. The leases must share
    /// one TTL (the first one's is used).
    public static func renew(
        _ held: [(lease: Lease, entry: StreamEntry)], consumer: String, group: String = RedisKeys.consumerGroup,
        via runner: some RedisCommandRunner
    ) async throws -> [Bool] {
        try await runner.perSlot(held, key: \.lease.key) { held in
            guard !held.isEmpty else { return [] }
            let (keys, arguments) = renewCall(held, consumer: consumer, group: group)
            return try await runner.evaluate(renewScript, keys: keys, arguments: arguments).flags(count: held.count)
        }
    }

    private static func renewCall(_ held: [(lease: Lease, entry: StreamEntry)], consumer: String, group: String)
        -> (keys: [any RedisArgument], arguments: [any RedisArgument])
    {
        var keys: [any RedisArgument] = []
        var arguments: [any RedisArgument] = [held[0].lease.ttlMilliseconds, group, consumer]
        keys.reserveCapacity(held.count * 2)
        arguments.reserveCapacity(3 + held.count * 2)
        for (lease, entry) in held {
            keys += [lease.key, entry.stream]
            arguments += [lease.owner, entry.id]
        }
        return (keys, arguments)
    }

    /// Takes every lease nobody holds, in one script call (one per hash slot on a cluster): one
    /// `Bool` per lease, `false` where someone else holds it. The leases must share one TTL (the
    /// first one's is used).
    public static func acquire(_ leases: [Lease], via runner: some RedisCommandRunner) async throws -> [Bool] {
        try await runner.perSlot(leases, key: \.key) { leases in
            guard let first = leases.first else { return [] }
            let keys: [any RedisArgument] = leases.map(\.key)
            let arguments: [any RedisArgument] = [first.ttlMilliseconds] + leases.map(\.owner)
            return try await runner.evaluate(acquireScript, keys: keys, arguments: arguments).flags(
                count: leases.count)
        }
    }

    /// Drops the lease if this owner still holds it; never deletes someone else's.
    @discardableResult
    public func release(via runner: some RedisCommandRunner) async throws -> Bool {
        try await runner.evaluate(Self.releaseScript, keys: [key], arguments: [owner]).int == 1
    }

    /// Takes the lease if nobody holds it. `false` means someone else does.
    public func acquire(via runner: some RedisCommandRunner) async throws -> Bool {
        try await runner.send(RedisCommand(["SET", key, owner, "NX", "PX", ttlMilliseconds]), timeout: nil) != .null
    }

    /// Who holds `key` now, if anyone.
    public static func holder(of key: String, via runner: some RedisCommandRunner) async throws -> String? {
        try await runner.send("GET", key).string
    }
}

extension RedisValue {
    /// A script's array of 1/0 flags as `Bool`s, exactly `count` of them.
    fileprivate func flags(count: Int) throws(RedisError) -> [Bool] {
        guard case .array(let values) = self, values.count == count else {
            throw RedisError(
                source: .client, code: .err, message: "expected \(count) flags from a lease script, got \(self)")
        }
        return values.map { $0.int == 1 }
    }
}
