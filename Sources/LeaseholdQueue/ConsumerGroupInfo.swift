import LeaseholdRedis

/// What `XINFO GROUPS` says about the `workers` group of one stream.
public struct ConsumerGroupInfo: Sendable, Equatable {
    public var consumers: Int64
    /// Delivered, not acknowledged.
    public var pending: Int64
    /// Not delivered yet; `nil` when Redis cannot tell (after deletions).
    public var lag: Int64?
    public var lastDeliveredID: String?

    /// The group's state, or `nil` when the stream or the group does not exist.
    public static func read(stream: String, group: String = RedisKeys.consumerGroup, redis: some RedisCommandRunner)
        async throws
        -> ConsumerGroupInfo?
    {
        let groups: RedisValue
        do {
            groups = try await redis.send("XINFO", "GROUPS", stream)
        } catch let error as RedisError where error.source == .server {
            return nil  // no such stream
        }
        for entry in groups.array ?? [] {
            guard let fields = entry.fieldMap, fields["name"]?.string == group else { continue }
            return ConsumerGroupInfo(
                consumers: fields["consumers"]?.int ?? 0, pending: fields["pending"]?.int ?? 0,
                lag: fields["lag"]?.int, lastDeliveredID: fields["last-delivered-id"]?.string)
        }
        return nil
    }
}

/// What `XINFO CONSUMERS` says about one consumer of the `workers` group.
public struct ConsumerInfo: Sendable, Equatable {
    public var name: String
    /// Delivered to it, not acknowledged.
    public var pending: Int64
    /// Milliseconds since it last read or claimed.
    public var idle: Int64

    /// The group's consumers on `stream`; none when the stream or the group does not exist.
    public static func read(
        stream: String, group: String = RedisKeys.consumerGroup, via runner: some RedisCommandRunner
    ) async throws -> [ConsumerInfo] {
        let reply: RedisValue
        do {
            reply = try await runner.send(RedisCommand(["XINFO", "CONSUMERS", stream, group]), timeout: nil)
        } catch let error as RedisError where error.source == .server {
            return []  // no such stream or group
        }
        return (reply.array ?? []).compactMap { info in
            guard let fields = info.fieldMap, let name = fields["name"]?.string else { return nil }
            return ConsumerInfo(name: name, pending: fields["pending"]?.int ?? 0, idle: fields["idle"]?.int ?? 0)
        }
    }
}
