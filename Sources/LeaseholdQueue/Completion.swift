import LeaseholdRedis

/// What a worker does after COMMIT, in one atomic Lua script: XACK the entry, publish the
/// outcome (when the request has an ID), and release the lease if this worker still holds it.
///
/// Atomic so that an outcome is never visible for an entry that is still pending, and a lease is
/// never released before its entry is acknowledged (which would let a reclaimer redo it — harmless
/// thanks to the inbox, but wasted work).
public struct Completion: Sendable {
    public let keys: RedisKeys

    public init(keys: RedisKeys) {
        self.keys = keys
    }

    static let script = RedisScript(
        """
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
        if ARGV[4] ~= '' and ARGV[6] == 'keep' then
            local current = redis.call('GET', KEYS[3])
            if not current or string.find(current, '"status":"pending"', 1, true) then
                redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
            end
        elseif ARGV[4] ~= '' then
            redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
        end
        if redis.call('GET', KEYS[2]) == ARGV[3] then
            redis.call('DEL', KEYS[2])
        end
        return 1
        """)

    /// Acknowledges `entry`, publishes `result` under its request ID's result key
    /// (``RedisKeys/result(_:in:)``, beside the entry's stream) for `resultTTL`, and
    /// releases `lease`. With `keepExisting`, an outcome already published for the ID stays and
    /// only a `pending` marker is replaced (a reused request ID must not overwrite the outcome of
    /// the request that used it first, but its own caller must learn it was refused).
    public func complete(
        _ entry: StreamEntry, lease: Lease, requestID: String?, result: [UInt8]?, resultTTL: Duration,
        keepExisting: Bool = false, via runner: some RedisCommandRunner
    ) async throws {
        let (keys, arguments) = Self.call(
            entry, lease: lease, resultKey: keys.result(requestID ?? "-", in: entry.stream),
            result: requestID == nil ? nil : result,
            resultTTL: resultTTL, keepExisting: keepExisting)
        _ = try await runner.evaluate(Self.script, keys: keys, arguments: arguments)
    }

    private static func call(
        _ entry: StreamEntry, lease: Lease, resultKey: String, result: [UInt8]?, resultTTL: Duration,
        keepExisting: Bool
    ) -> (keys: [any RedisArgument], arguments: [any RedisArgument]) {
        (
            [entry.stream, lease.key, resultKey],
            [
                RedisKeys.consumerGroup, entry.id, lease.owner, result ?? [UInt8](), resultTTL.redisMilliseconds,
                keepExisting ? "keep" : "",
            ]
        )
    }
}
