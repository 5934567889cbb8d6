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

    // KEYS[1] stream, KEYS[2] marker key, KEYS[3] digest key (the stream again when there is none)
    // ARGV[1] high-water mark, ARGV[2] group, ARGV[3] marker value ('' for none), ARGV[4] marker TTL ms,
    // ARGV[5] the request's digest ('' for none), ARGV[6..] the entry's field/value pairs
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
        local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 6))
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

    /// XADDs `entry` to its stream (and writes `marker`, if any) and returns the entry's ID.
    /// - Throws: ``RedisError`` with code ``overloaded`` when over the high-water mark, ``reused``
    ///   when the marker's digest differs from the one first stored.
    ///
    /// Through a ``RedisClient``, concurrent callers share one connection's pipeline
    /// (ingress: every request in flight rides the same round trips).
    public func enqueue(
        _ entry: StreamEntry, marker: Marker? = nil, via runner: some RedisCommandRunner
    ) async throws -> String {
        let (keys, arguments) = Self.scriptArguments(entry, marker: marker, highWaterMark: highWaterMark)
        return try Self.entryID(await runner.evaluate(Self.enqueueScript, keys: keys, arguments: arguments))
    }

    /// The script call ``enqueue(_:marker:via:)`` makes, for a caller that sends it in a pipeline
    /// with other commands (read the entry ID from its reply with ``entryID(in:)``).
    public func enqueueCall(_ entry: StreamEntry, marker: Marker? = nil)
        -> (script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument])
    {
        let (keys, arguments) = Self.scriptArguments(entry, marker: marker, highWaterMark: highWaterMark)
        return (Self.enqueueScript, keys, arguments)
    }

    /// The entry ID in the enqueue script's reply; its error reply (``overloaded``, ``reused``) thrown.
    public static func entryID(in reply: RedisValue) throws(RedisError) -> String {
        if case .error(let error) = reply { throw error }
        return try entryID(reply)
    }

    private static func scriptArguments(_ entry: StreamEntry, marker: Marker?, highWaterMark: Int)
        -> (keys: [any RedisArgument], arguments: [any RedisArgument])
    {
        let keys: [any RedisArgument] = [
            entry.stream, marker?.key ?? entry.stream, marker?.digestKey ?? entry.stream,
        ]
        let arguments: [any RedisArgument] =
            [
                highWaterMark, RedisKeys.consumerGroup, marker?.value ?? "",
                (marker?.ttl ?? .seconds(1)).redisMilliseconds,
                marker?.digestKey == nil ? "" : marker?.digest ?? "",
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
