import LeaseholdCore
import LeaseholdRedis

/// Appends entries to a stream, refusing when the stream's backlog is over its high-water mark.
///
/// The check and the XADD run in one Lua script, so the mark holds under any number of ingress
/// replicas. The backlog is what workers have not finished: entries not yet delivered to the
/// consumer group (`lag`, at most the stream's length: entries deleted unread can stay in the lag
/// counter) plus those delivered but not acknowledged (`pending`); without a group yet, the
/// stream's length. Every entry of the backlog is on the stream (the supervisor's trimmer never
/// trims a pending entry), so the group is only looked at (`XINFO GROUPS`, half the script's
/// cost) once the stream is as long as the mark.
///
/// The same script can also write a marker key (the API's `pending` outcome) with `SET NX`, so
/// the marker exists exactly when the entry does: one round trip, nothing to undo on refusal.
///
/// And it can hold the entry to a ``FloodLimit``: a token bucket per sender, kept in a hash beside
/// the stream and timed by Redis's own clock (`TIME`), so every ingress replica draws from the
/// same bucket. A refusal, by the bucket or by the mark, writes nothing: no entry, no marker, no
/// token taken.
public struct StreamProducer: Sendable {
    public let keys: RedisKeys
    /// Refuse new entries when the backlog reaches this; 0 disables the check.
    public let highWaterMark: Int

    public init(keys: RedisKeys, highWaterMark: Int) {
        self.keys = keys
        self.highWaterMark = highWaterMark
    }

    /// A key written with `SET NX PX` together with the entry (never overwriting an existing value).
    ///
    /// With a `digest`, the marker is also an idempotency record: the digest is stored under
    /// `digestKey` (`SET NX`, same TTL) by the first request, and a later request whose digest
    /// differs is refused with ``StreamProducer/reused`` before anything is written.
    public struct Marker: Sendable {
        public var key: String
        public var value: String
        public var ttl: Duration
        public var digestKey: String?
        public var digest: String?

        public init(key: String, value: String, ttl: Duration, digestKey: String? = nil, digest: String? = nil) {
            self.key = key
            self.value = value
            self.ttl = ttl
            self.digestKey = digestKey
            self.digest = digest
        }
    }

    /// A token bucket per sender: `burst` entries at once, then `rate` a second.
    ///
    /// The bucket is a hash (`tokens`, `at`: Redis time in ms) under `key`, which must be in the
    /// stream's hash slot on a Redis Cluster (``RedisKeys/floodBucket(_:in:)``). A full bucket and
    /// a missing one are the same, so the hash expires once it would have refilled: an idle
    /// sender costs no memory.
    public struct FloodLimit: Sendable, Equatable {
        /// The bucket's key (one per sender).
        public var key: String
        /// Tokens added per second; at least 1.
        public var rate: Int
        /// The bucket's size: entries accepted at once from a full bucket; at least 1.
        public var burst: Int

        public init(key: String, rate: Int, burst: Int) {
            precondition(rate >= 1 && burst >= 1, "a flood limit has a rate and a burst of at least 1")
            self.key = key
            self.rate = rate
            self.burst = burst
        }
    }

    /// A refusal by a ``FloodLimit``: the sender's bucket is empty.
    public struct Throttled: Error, Sendable, Equatable {
        /// How long until the bucket holds a token again (by Redis's clock), at least 1 ms.
        public var retryAfter: Duration

        public init(retryAfter: Duration) {
            self.retryAfter = retryAfter
        }

        /// From the script's ``StreamProducer/throttled`` reply, `THROTTLED <ms> ms …` (1 s if the
        /// figure is missing).
        public init(reply error: RedisError) {
            let words = error.message.split(separator: " ")
            let milliseconds = words.count > 1 ? Int(words[1]) ?? 1000 : 1000
            self.init(retryAfter: .milliseconds(max(1, milliseconds)))
        }

        /// ``retryAfter`` in whole seconds, rounded up (at least 1): a `Retry-After` header.
        public var retryAfterSeconds: Int {
            max(1, Int((retryAfter.millisecondsRoundedUp + 999) / 1000))
        }
    }

    // KEYS[1] stream, KEYS[2] marker key, KEYS[3] digest key, KEYS[4] flood bucket (each the stream
    // again when there is none)
    // ARGV[1] high-water mark, ARGV[2] group, ARGV[3] marker value ('' for none), ARGV[4] marker TTL ms,
    // ARGV[5] the request's digest ('' for none), ARGV[6] flood rate per second (0 for none),
    // ARGV[7] flood burst, ARGV[8..] the entry's field/value pairs
    static let enqueueScript = RedisScript(
        """
        local limit = tonumber(ARGV[1])
        local group = ARGV[2]
        if ARGV[5] ~= '' then
            local first = redis.call('GET', KEYS[3])
            if first and first ~= ARGV[5] then
                return redis.error_reply('REUSED the key was first used for a different request')
            end
        end
        local rate = tonumber(ARGV[6])
        local burst = tonumber(ARGV[7])
        local tokens, now
        if rate > 0 then
            -- Redis's clock, so every ingress replica measures the same refill. (Redis 7 replicates
            -- a script by its effects, so reading the time before writing is allowed.)
            local time = redis.call('TIME')
            now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
            local state = redis.call('HMGET', KEYS[4], 'tokens', 'at')
            tokens = tonumber(state[1])
            local at = tonumber(state[2])
            if tokens == nil or at == nil then
                tokens = burst
            else
                tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
            end
            if tokens < 1 then
                local wait = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
                return redis.error_reply('THROTTLED ' .. wait .. ' ms until the sender may send again')
            end
        end
        if limit > 0 then
            -- A stream shorter than the mark cannot hold a backlog at it (see the type's comment).
            local length = redis.call('XLEN', KEYS[1])
            if length >= limit then
                local backlog = length
                local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
                for _, info in ipairs(groups) do
                    local fields = {}
                    for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
                    if fields['name'] == group and type(fields['lag']) == 'number' then
                        -- Undelivered entries are on the stream, so never more than its length:
                        -- the group's lag counts entries added minus entries read, and entries
                        -- deleted before any consumer read them (XDEL, emptying the stream)
                        -- would otherwise count forever.
                        backlog = math.min(fields['lag'], length) + fields['pending']
                    end
                end
                if backlog >= limit then
                    return redis.error_reply('OVERLOADED backlog ' .. backlog .. ' is at the high-water mark ' .. limit)
                end
            end
        end
        local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 8))
        if rate > 0 then
            -- Gone once it would be full again: a missing bucket is a full one.
            redis.call('HSET', KEYS[4], 'tokens', tostring(tokens - 1), 'at', string.format('%d', now))
            redis.call('PEXPIRE', KEYS[4], math.ceil(burst * 1000 / rate) + 1000)
        end
        if ARGV[3] ~= '' then
            redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4])
        end
        if ARGV[5] ~= '' then
            redis.call('SET', KEYS[3], ARGV[5], 'NX', 'PX', ARGV[4])
        end
        return id
        """)

    /// The error code the script answers with when the stream is over its mark.
    public static let overloaded = RedisError.Code(rawValue: "OVERLOADED")
    /// The error code the script answers with when a marker's key was first used with another digest.
    public static let reused = RedisError.Code(rawValue: "REUSED")
    /// The error code the script answers with when the sender's ``FloodLimit`` bucket is empty
    /// (``entryID(in:)`` and ``enqueue(_:marker:flood:via:)`` throw ``Throttled`` instead).
    public static let throttled = RedisError.Code(rawValue: "THROTTLED")

    /// XADDs `entry` to its stream (and writes `marker`, if any, and takes a token from `flood`'s
    /// bucket) and returns the entry's ID.
    /// - Throws: ``Throttled`` when `flood`'s bucket is empty; ``RedisError`` with code
    ///   ``overloaded`` when over the high-water mark, ``reused`` when the marker's digest differs
    ///   from the one first stored. Nothing is written on any of these.
    ///
    /// Through a ``RedisClient``, concurrent callers share one connection's pipeline
    /// (ingress: every request in flight rides the same round trips).
    public func enqueue(
        _ entry: StreamEntry, marker: Marker? = nil, flood: FloodLimit? = nil, via runner: some RedisCommandRunner
    ) async throws -> String {
        let (keys, arguments) = Self.scriptArguments(
            entry, marker: marker, flood: flood, highWaterMark: highWaterMark)
        let reply: RedisValue
        do {
            reply = try await runner.evaluate(Self.enqueueScript, keys: keys, arguments: arguments)
        } catch let error as RedisError where error.code == Self.throttled {
            throw Throttled(reply: error)
        }
        return try Self.entryID(in: reply)
    }

    /// The script call ``enqueue(_:marker:flood:via:)`` makes, for a caller that sends it in a
    /// pipeline with other commands (read the entry ID from its reply with ``entryID(in:)``).
    public func enqueueCall(_ entry: StreamEntry, marker: Marker? = nil, flood: FloodLimit? = nil)
        -> (script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument])
    {
        let (keys, arguments) = Self.scriptArguments(
            entry, marker: marker, flood: flood, highWaterMark: highWaterMark)
        return (Self.enqueueScript, keys, arguments)
    }

    /// The entry ID in the enqueue script's reply; its error reply thrown: ``Throttled`` for an
    /// empty flood bucket, the ``RedisError`` itself otherwise (``overloaded``, ``reused``).
    public static func entryID(in reply: RedisValue) throws -> String {
        if case .error(let error) = reply {
            throw error.code == throttled ? Throttled(reply: error) : error
        }
        return try entryID(reply)
    }

    private static func scriptArguments(_ entry: StreamEntry, marker: Marker?, flood: FloodLimit?, highWaterMark: Int)
        -> (keys: [any RedisArgument], arguments: [any RedisArgument])
    {
        let keys: [any RedisArgument] = [
            entry.stream, marker?.key ?? entry.stream, marker?.digestKey ?? entry.stream, flood?.key ?? entry.stream,
        ]
        let arguments: [any RedisArgument] =
            [
                highWaterMark, RedisKeys.consumerGroup, marker?.value ?? "",
                (marker?.ttl ?? .seconds(1)).redisMilliseconds,
                marker?.digestKey == nil ? "" : marker?.digest ?? "",
                flood?.rate ?? 0, flood?.burst ?? 0,
            ] + entry.fields
        return (keys, arguments)
    }

    private static func entryID(_ reply: RedisValue) throws(RedisError) -> String {
        guard let id = reply.string else {
            throw RedisError(source: .server, code: .proto, message: "XADD returned \(reply)", command: "XADD")
        }
        return id
    }
}
