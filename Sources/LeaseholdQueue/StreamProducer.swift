import LeaseholdRedis

/// Appends entries to a stream, refusing when the stream's backlog is over its high-water mark.
///
/// The check and the XADD run in one Lua script, so the mark holds under any number of ingress
/// replicas. The backlog is what workers have not finished: entries not yet delivered to the
/// consumer group (`lag`) plus those delivered but not acknowledged (`pending`); without a group
/// yet, the stream's length.
public struct StreamProducer: Sendable {
    public let keys: RedisKeys
    /// Refuse new entries when the backlog reaches this; 0 disables the check.
    public let highWaterMark: Int

    public init(keys: RedisKeys, highWaterMark: Int) {
        self.keys = keys
        self.highWaterMark = highWaterMark
    }

    static let enqueueScript = RedisScript(
        """
        local limit = tonumber(ARGV[1])
        local group = ARGV[2]
        if limit > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
            local backlog = redis.call('XLEN', KEYS[1])
            local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
            for _, info in ipairs(groups) do
                local fields = {}
                for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
                if fields['name'] == group and type(fields['lag']) == 'number' then
                    backlog = fields['lag'] + fields['pending']
                end
            end
            if backlog >= limit then
                return redis.error_reply('OVERLOADED backlog ' .. backlog .. ' is at the high-water mark ' .. limit)
            end
        end
        return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
        """)

    /// The error code the script answers with when the stream is over its mark.
    public static let overloaded = RedisError.Code(rawValue: "OVERLOADED")

    /// XADDs `entry` to `lh:stream:<source>` and returns its ID.
    /// - Throws: ``RedisError`` with code ``overloaded`` when over the high-water mark.
    public func enqueue(_ entry: StreamEntry, on connection: RedisConnection) throws(RedisError) -> String {
        let reply = try connection.evaluate(
            Self.enqueueScript, keys: [entry.stream],
            arguments: [highWaterMark, RedisKeys.consumerGroup] + entry.fields)
        guard let id = reply.string else {
            throw RedisError(source: .server, code: .proto, message: "XADD returned \(reply)", command: "XADD")
        }
        return id
    }
}
