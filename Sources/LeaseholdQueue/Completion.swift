import LeaseholdRedis

/// What a worker does after COMMIT, in one atomic Lua script: XACK the entry, publish the
/// outcome (when the request has an ID), and release the lease if this worker still holds it.
///
/// Atomic so that an outcome is never visible for an entry that is still pending, and a lease is
/// never released before its entry is acknowledged (which would let a reclaimer redo it — harmless
/// thanks to the inbox, but wasted work).
///
/// One script call completes any number of entries (``complete(_:via:)``, one call per hash slot
/// on a Redis Cluster): the worker gathers the completions of one reactor turn into one call, so
/// Redis runs a script per batch rather than per message.
public struct Completion: Sendable {
    public let keys: RedisKeys

    public init(keys: RedisKeys) {
        self.keys = keys
    }

    /// One entry's completion.
    public struct Item: Sendable {
        public var entry: StreamEntry
        public var lease: Lease
        /// Where the outcome is published (``RedisKeys/result(_:in:)``); `nil` publishes nothing.
        public var resultKey: String?
        public var result: [UInt8]
        public var resultTTL: Duration
        /// Keep an outcome already published under `resultKey`; replace only a `pending` marker.
        public var keepExisting: Bool

        public init(
            entry: StreamEntry, lease: Lease, resultKey: String?, result: [UInt8], resultTTL: Duration,
            keepExisting: Bool = false
        ) {
            self.entry = entry
            self.lease = lease
            self.resultKey = resultKey
            self.result = result
            self.resultTTL = resultTTL
            self.keepExisting = keepExisting
        }
    }

    /// The item that completes `entry` and publishes `result` under its request ID's result key
    /// (beside the entry's stream); without a request ID, or without a result, nothing is published.
    public func item(
        _ entry: StreamEntry, lease: Lease, requestID: String?, result: [UInt8]?, resultTTL: Duration,
        keepExisting: Bool = false
    ) -> Item {
        let publishes = requestID != nil && result != nil
        return Item(
            entry: entry, lease: lease, resultKey: publishes ? keys.result(requestID ?? "-", in: entry.stream) : nil,
            result: publishes ? result ?? [] : [], resultTTL: resultTTL, keepExisting: keepExisting)
    }

    // KEYS: per entry its stream, lease key and result key (the stream again when nothing is
    // published). ARGV: the group, then per entry its ID, the lease owner, the result ('' for
    // none), the result TTL (ms) and 'keep' or ''. Each entry runs in a protected call of its own,
    // so one that fails (say WRONGTYPE on its result key) keeps no other from completing: its
    // error comes back in its place, 1 for each of the others.
    static let script = RedisScript(
        """
        local group = ARGV[1]
        local function complete(stream, lease, resultKey, id, owner, result, ttl, keep)
            redis.call('XACK', stream, group, id)
            if result ~= '' and keep == 'keep' then
                local current = redis.call('GET', resultKey)
                if not current or string.find(current, '"status":"pending"', 1, true) then
                    redis.call('SET', resultKey, result, 'PX', ttl)
                end
            elseif result ~= '' then
                redis.call('SET', resultKey, result, 'PX', ttl)
            end
            if redis.call('GET', lease) == owner then
                redis.call('DEL', lease)
            end
        end
        local done = {}
        for i = 1, #KEYS / 3 do
            local k, a = 3 * i - 2, 5 * i - 3
            local ok, err = pcall(complete, KEYS[k], KEYS[k + 1], KEYS[k + 2],
                ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
            if ok then
                done[i] = 1
            elseif type(err) == 'table' then
                done[i] = err
            else
                done[i] = {err = tostring(err)}
            end
        end
        return done
        """)

    /// Completes every item in one script call (on a Redis Cluster, one per hash slot of their
    /// streams, all at once). Returns, in `items`' order, `nil` for each item completed and the
    /// error of each that was not: its part of the script failed, or its call failed as a whole
    /// (connection, timeout), which on a cluster fails only the items of that call's slot.
    public func complete(_ items: [Item], via runner: some RedisCommandRunner) async -> [(any Error)?] {
        let settled = await runner.perSlotSettled(items, key: \.entry.stream) { items -> [RedisError?] in
            guard !items.isEmpty else { return [] }
            var keys: [any RedisArgument] = []
            var arguments: [any RedisArgument] = [RedisKeys.consumerGroup]
            keys.reserveCapacity(items.count * 3)
            arguments.reserveCapacity(1 + items.count * 5)
            for item in items {
                keys += [item.entry.stream, item.lease.key, item.resultKey ?? item.entry.stream]
                arguments += [
                    item.entry.id, item.lease.owner, item.result, item.resultTTL.redisMilliseconds,
                    item.keepExisting ? "keep" : "",
                ]
            }
            let reply = try await runner.evaluate(Self.script, keys: keys, arguments: arguments)
            guard case .array(let values) = reply, values.count == items.count else {
                throw RedisError(
                    source: .client, code: .err,
                    message: "expected \(items.count) answers from the completion script, got \(reply)")
            }
            return values.map { value -> RedisError? in
                if case .error(let error) = value { return error }
                return nil
            }
        }
        return settled.map { result -> (any Error)? in
            switch result {
            case .success(let error): error
            case .failure(let error): error
            }
        }
    }

    /// Acknowledges `entry`, publishes `result` under its request ID's result key
    /// (``RedisKeys/result(_:in:)``, beside the entry's stream) for `resultTTL`, and
    /// releases `lease`. With `keepExisting`, an outcome already published for the ID stays and
    /// only a `pending` marker is replaced (a reused request ID must not overwrite the outcome of
    /// the request that used it first, but its own caller must learn it was refused).
    public func complete(
        _ entry: StreamEntry, lease: Lease, requestID: String?, result: [UInt8]?, resultTTL: Duration,
        keepExisting: Bool = false, via runner: some RedisCommandRunner
    ) async throws {
        let item = item(
            entry, lease: lease, requestID: requestID, result: result, resultTTL: resultTTL, keepExisting: keepExisting)
        if let error = await complete([item], via: runner).first ?? nil { throw error }
    }
}
