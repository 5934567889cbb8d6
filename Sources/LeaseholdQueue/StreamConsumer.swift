import LeaseholdRedis

/// Reads entries for one consumer of the `workers` group across several streams.
public struct StreamConsumer: Sendable {
    public let streams: [String]
    public let group: String
    /// Unique per process (`<host>-<pid>-<random>`): the consumer group tracks pending entries by it.
    public let consumer: String

    public init(streams: [String], group: String = RedisKeys.consumerGroup, consumer: String) {
        self.streams = streams
        self.group = group
        self.consumer = consumer
    }

    /// Creates the consumer group on every stream (and the stream itself) if missing. The group
    /// starts at `0`, so entries written before the first worker started are delivered too.
    public func ensureGroups(on connection: RedisConnection) throws(RedisError) {
        for stream in streams {
            do {
                try connection.send("XGROUP", "CREATE", stream, group, "0", "MKSTREAM")
            } catch where error.code == .busyGroup {
                // Exists already: fine.
            }
        }
    }

    /// What one read returned: entries to process, and entries that could not be decoded (to be
    /// dead-lettered, never silently dropped).
    public struct Batch: Sendable {
        public var entries: [StreamEntry] = []
        public var undecodable: [StreamEntryDecodingError] = []
        public var isEmpty: Bool { entries.isEmpty && undecodable.isEmpty }
    }

    /// `XREADGROUP … COUNT count BLOCK block STREAMS … >`: at most `count` new entries, waiting up
    /// to `block` for the first. Recreates the groups if they vanished (`NOGROUP`).
    public func read(count: Int, block: Duration, on connection: RedisConnection) throws(RedisError) -> Batch {
        precondition(count > 0, "never fetch more entries than there are free slots")
        let command = RedisCommand(
            ["XREADGROUP", "GROUP", group, consumer, "COUNT", count, "BLOCK", block.redisMilliseconds, "STREAMS"]
                + streams + streams.map { _ in ">" })
        let reply: RedisValue
        do {
            reply = try connection.send(command, timeout: block + .seconds(5))
        } catch where error.code == .noGroup {
            try ensureGroups(on: connection)
            reply = try connection.send(command, timeout: block + .seconds(5))
        }
        return Self.batch(from: reply)
    }

    /// Decodes `[[stream, [[id, fields], …]], …]`.
    static func batch(from reply: RedisValue) -> Batch {
        var batch = Batch()
        guard case .array(let perStream) = reply else { return batch }
        for streamReply in perStream {
            guard case .array(let pair) = streamReply, pair.count == 2, let stream = pair[0].string,
                case .array(let entries) = pair[1]
            else { continue }
            for entry in entries {
                do {
                    batch.entries.append(try StreamEntry(stream: stream, reply: entry))
                } catch {
                    batch.undecodable.append(error)
                }
            }
        }
        return batch
    }

    /// XACK.
    public func acknowledge(_ entry: StreamEntry, on connection: RedisConnection) throws(RedisError) {
        try connection.send("XACK", entry.stream, group, entry.id)
    }
}
