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
            } catch  where error.code == .busyGroup {
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
        /// Entries delivered to this consumer by the read (both kinds are pending until handled).
        public var count: Int { entries.count + undecodable.count }

        mutating func append(_ other: Batch) {
            entries += other.entries
            undecodable += other.undecodable
        }
    }

    /// At most `count` new entries **in total** over all streams, waiting up to `block` for the
    /// first when there are none. Recreates the groups if they vanished (`NOGROUP`).
    ///
    /// One `XREADGROUP` over several streams applies its `COUNT` to each stream, so it could
    /// deliver `count` × the number of streams. Instead the streams are read one at a time with
    /// the budget still left, starting with stream `first` (modulo their number): the caller
    /// rotates it, so a busy stream cannot starve the others when the budget is small.
    ///
    /// When every stream is empty, the wait must not claim anything either: `XREAD` (no group)
    /// blocks until some stream has an entry after the group's last delivered ID, which is only
    /// ever true of entries not yet delivered to any consumer (entries are added with `*`, so new
    /// ones have larger IDs). That IDs are taken after the empty reads, so an entry added in
    /// between is seen at once, not after `block`. Then the streams are read again, with the
    /// same budget.
    public func read(count: Int, block: Duration, first: Int = 0, on connection: RedisConnection) throws(RedisError)
        -> Batch
    {
        precondition(count > 0, "never fetch more entries than there are free slots")
        let batch = try readAvailable(count: count, first: first, on: connection)
        guard batch.isEmpty, block > .zero, !streams.isEmpty else { return batch }
        guard try waitForUndelivered(block: block, on: connection) else { return batch }
        return try readAvailable(count: count, first: first, on: connection)
    }

    /// Non-blocking reads, stream by stream, until `count` entries were delivered or every stream
    /// was asked once.
    private func readAvailable(count: Int, first: Int, on connection: RedisConnection) throws(RedisError) -> Batch {
        var batch = Batch()
        let start = streams.isEmpty ? 0 : ((first % streams.count) + streams.count) % streams.count
        for offset in streams.indices {
            let remaining = count - batch.count
            guard remaining > 0 else { break }
            let stream = streams[(start + offset) % streams.count]
            let command = RedisCommand(
                ["XREADGROUP", "GROUP", group, consumer, "COUNT", remaining, "STREAMS", stream, ">"])
            let reply: RedisValue
            do {
                reply = try connection.send(command)
            } catch  where error.code == .noGroup {
                try ensureGroups(on: connection)
                reply = try connection.send(command)
            }
            batch.append(Self.batch(from: reply))
        }
        return batch
    }

    /// Blocks up to `block` until some stream holds an entry the group has not delivered yet.
    /// `true` when one (probably) arrived; `false` after the timeout.
    private func waitForUndelivered(block: Duration, on connection: RedisConnection) throws(RedisError) -> Bool {
        var lastDelivered: [String] = []
        for stream in streams {
            guard let id = try lastDeliveredID(of: stream, on: connection) else {
                // The stream or the group vanished: recreate them and read again at once.
                try ensureGroups(on: connection)
                return true
            }
            lastDelivered.append(id)
        }
        let command = RedisCommand(
            ["XREAD", "COUNT", 1, "BLOCK", block.redisMilliseconds, "STREAMS"] + streams + lastDelivered)
        let reply = try connection.send(command, timeout: block + .seconds(5))
        return !reply.isNull
    }

    /// The group's `last-delivered-id` on `stream` (`XINFO GROUPS`), or `nil` when the stream or
    /// the group does not exist.
    private func lastDeliveredID(of stream: String, on connection: RedisConnection) throws(RedisError) -> String? {
        let groups: RedisValue
        do {
            groups = try connection.send("XINFO", "GROUPS", stream)
        } catch  where error.source == .server {
            return nil  // no such stream
        }
        for entry in groups.array ?? [] {
            guard let fields = entry.fieldMap else { continue }
            if fields["name"]?.string == group { return fields["last-delivered-id"]?.string }
        }
        return nil
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
