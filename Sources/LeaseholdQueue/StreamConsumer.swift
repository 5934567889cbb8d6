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
    public func ensureGroups(via runner: some RedisCommandRunner) async throws {
        for stream in streams {
            do {
                try await runner.send("XGROUP", "CREATE", stream, group, "0", "MKSTREAM")
            } catch let error as RedisError where error.code == .busyGroup {
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
    ///
    /// Give it a runner of its own when `block` is not zero: the wait holds a connection.
    public func read(count: Int, block: Duration, first: Int = 0, via runner: some RedisCommandRunner) async throws
        -> Batch
    {
        precondition(count > 0, "never fetch more entries than there are free slots")
        let batch = try await readAvailable(count: count, first: first, via: runner)
        guard batch.isEmpty, block > .zero, !streams.isEmpty else { return batch }
        guard try await waitForUndelivered(block: block, streams: streams, via: runner) else { return batch }
        return try await readAvailable(count: count, first: first, via: runner)
    }

    /// Non-blocking reads, stream by stream, until `count` entries were delivered or every stream
    /// was asked once.
    private func readAvailable(count: Int, first: Int, via runner: some RedisCommandRunner) async throws -> Batch {
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
                reply = try await runner.send(command, timeout: nil)
            } catch let error as RedisError where error.code == .noGroup {
                try await ensureGroups(via: runner)
                reply = try await runner.send(command, timeout: nil)
            }
            batch.append(Self.batch(from: reply))
        }
        return batch
    }

    /// How ``read(count:block:first:leasing:via:)`` names and times the leases it takes.
    public struct LeaseTerms: Sendable {
        /// Lease keys are ``RedisKeys/lease(_:in:)`` of the entry's message key and stream.
        public var keys: RedisKeys
        /// A lease's owner is this followed by its entry's ID; make it unique per call.
        public var ownerPrefix: String
        public var ttl: Duration

        public init(keys: RedisKeys, ownerPrefix: String, ttl: Duration) {
            self.keys = keys
            self.ownerPrefix = ownerPrefix
            self.ttl = ttl
        }

        /// The lease of `entry` under these terms.
        public func lease(of entry: StreamEntry) -> Lease {
            Lease(key: keys.lease(entry.key, in: entry.stream), owner: ownerPrefix + entry.id, ttl: ttl)
        }
    }

    /// An entry read together with its lease: taken (`held`), or held by someone else.
    public struct LeasedEntry: Sendable {
        public var entry: StreamEntry
        public var lease: Lease
        public var held: Bool

        public init(entry: StreamEntry, lease: Lease, held: Bool) {
            self.entry = entry
            self.lease = lease
            self.held = held
        }
    }

    /// What ``read(count:block:first:leasing:via:)`` returns.
    public struct LeasedBatch: Sendable {
        public var entries: [LeasedEntry] = []
        public var undecodable: [StreamEntryDecodingError] = []
        /// The streams the read skipped because they are paused (``StreamPauses``).
        public var paused: Set<String> = []
        public var isEmpty: Bool { entries.isEmpty && undecodable.isEmpty }
    }

    // KEYS: the streams, in the order to read them. ARGV: group, consumer, count, lease TTL (ms),
    // lease owner prefix, then the lease key prefix of each stream (ARGV[5 + i] for KEYS[i]), then
    // the pause key of each (ARGV[5 + #KEYS + i]). A paused stream (its pause key exists) is not
    // read: it comes back as {stream, 'PAUSED', {}}.
    // For each stream while the budget lasts: XREADGROUP … COUNT <budget left> … '>', then SET NX
    // PX the lease of each entry read (`<stream's lease prefix><key field>`, owner `<owner
    // prefix><entry id>`). Returns one {stream, entries, taken flags} per stream read, or
    // {stream, error text, {}} for a stream whose read failed (e.g. NOGROUP) — what the other
    // streams delivered is still returned, so nothing delivered is ever lost in a failed reply.
    // The lease keys cannot be declared in KEYS (they depend on what is read), but each lies in
    // its stream's hash slot in the sharded layout (`lh:{bookings:3}:lease:…` beside
    // `lh:{bookings:3}:stream`), which a Redis Cluster allows; on a cluster each call names one stream.
    static let readAndLeaseScript = RedisScript(
        """
        local budget = tonumber(ARGV[3])
        local result = {}
        for streamIndex, stream in ipairs(KEYS) do
            if budget <= 0 then break end
            local reply
            if redis.call('EXISTS', ARGV[5 + #KEYS + streamIndex]) == 1 then
                reply = 'PAUSED'
            else
                reply = redis.pcall('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', budget, 'STREAMS', stream, '>')
            end
            if reply == 'PAUSED' then
                result[#result + 1] = {stream, 'PAUSED', {}}
            elseif type(reply) == 'table' and reply.err then
                result[#result + 1] = {stream, reply.err, {}}
            elseif type(reply) == 'table' then
                local entries = reply[1][2]
                local taken = {}
                for i, entry in ipairs(entries) do
                    local fields = entry[2]
                    local key
                    if type(fields) == 'table' then
                        for j = 1, #fields, 2 do
                            if fields[j] == 'key' then
                                key = fields[j + 1]
                                break
                            end
                        end
                    end
                    if key and redis.call('SET', ARGV[5 + streamIndex] .. key, ARGV[5] .. entry[1], 'NX', 'PX', ARGV[4]) then
                        taken[i] = 1
                    else
                        taken[i] = 0
                    end
                end
                budget = budget - #entries
                result[#result + 1] = {stream, entries, taken}
            end
        end
        return result
        """)

    /// ``read(count:block:first:via:)`` that also takes each entry's lease, all in one script call
    /// (one round trip for the reads of every stream and the leases of the whole batch). An
    /// entry whose lease someone else holds comes back with `held == false`. The lease of an
    /// entry that cannot be decoded (if it had a key at all) is left to expire.
    ///
    /// When nothing is there, it waits up to `block` as ``read(count:block:first:via:)`` does
    /// (without claiming anything) and reads once more. Give it a runner of its own: the wait
    /// holds a connection for up to `block`.
    public func read(
        count: Int, block: Duration, first: Int = 0, leasing terms: LeaseTerms, via runner: some RedisCommandRunner
    ) async throws -> LeasedBatch {
        precondition(count > 0, "never fetch more entries than there are free slots")
        let batch = try await readAndLease(count: count, first: first, terms: terms, via: runner)
        guard batch.isEmpty, block > .zero, !streams.isEmpty else { return batch }
        // A paused stream's undelivered entries would end every wait at once: wait on the others.
        let open = streams.filter { !batch.paused.contains($0) }
        guard !open.isEmpty else {
            try? await Task.sleep(for: block)  // cancelled: the caller is stopping; nothing was claimed
            return batch
        }
        guard try await waitForUndelivered(block: block, streams: open, via: runner) else { return batch }
        return try await readAndLease(count: count, first: first, terms: terms, via: runner)
    }

    private func readAndLease(count: Int, first: Int, terms: LeaseTerms, via runner: some RedisCommandRunner)
        async throws -> LeasedBatch
    {
        guard !streams.isEmpty else { return LeasedBatch() }
        let start = ((first % streams.count) + streams.count) % streams.count
        let ordered = streams.indices.map { streams[(start + $0) % streams.count] }
        var batch = LeasedBatch()
        var missingGroup = false
        // On one node, one script call reads every stream; on a cluster, one call per stream
        // (each its own hash slot), while the budget lasts. Should a later call fail (its master
        // failing over), the entries earlier calls delivered stay pending on this consumer and
        // the supervisor reclaims them once their leases expire and the visibility timeout has
        // passed: late, never lost.
        for calls in runner.isCluster ? ordered.map({ [$0] }) : [ordered] {
            let remaining = count - batch.entries.count - batch.undecodable.count
            guard remaining > 0 else { break }
            let reply = try await runner.evaluate(
                Self.readAndLeaseScript, keys: calls,
                arguments: [group, consumer, remaining, terms.ttl.redisMilliseconds, terms.ownerPrefix]
                    + calls.map { terms.keys.scope(of: $0) + "lease:" } + calls.map { terms.keys.pause(of: $0) })
            missingGroup = Self.collect(reply, terms: terms, into: &batch) || missingGroup
        }
        if missingGroup {
            // The stream or the group vanished: recreate them; the next read finds its entries.
            try await ensureGroups(via: runner)
        }
        return batch
    }

    /// Adds the entries of a read-and-lease reply to `batch`; `true` when a stream's group is missing.
    private static func collect(_ reply: RedisValue, terms: LeaseTerms, into batch: inout LeasedBatch) -> Bool {
        var missingGroup = false
        for part in reply.array ?? [] {
            guard case .array(let triple) = part, triple.count == 3, let stream = triple[0].string else { continue }
            guard case .array(let entries) = triple[1] else {
                if triple[1].string == "PAUSED" { batch.paused.insert(stream) }
                if triple[1].string?.hasPrefix("NOGROUP") == true { missingGroup = true }
                continue
            }
            let taken = triple[2].array ?? []
            for (index, reply) in entries.enumerated() {
                do {
                    let entry = try StreamEntry(stream: stream, reply: reply)
                    let held = index < taken.count && taken[index].int == 1
                    batch.entries.append(LeasedEntry(entry: entry, lease: terms.lease(of: entry), held: held))
                } catch {
                    batch.undecodable.append(error)
                }
            }
        }
        return missingGroup
    }

    /// Waits up to `block` until some stream holds an entry the group has not delivered yet:
    /// `true` when one (probably) arrived, `false` after the timeout. On a cluster, where one `XREAD` may
    /// name only streams of one hash slot, it goes round the streams, waiting on each in turn for
    /// a short while (``clusterWaitSlice`` shared among them, at least 10 ms each) until one has
    /// something or `block` is over: an idle worker then costs one `XREAD` per stream per slice,
    /// and an entry waits at most about one slice before it is seen.
    private func waitForUndelivered(block: Duration, streams: [String], via runner: some RedisCommandRunner)
        async throws -> Bool
    {
        var lastDelivered: [String] = []
        for stream in streams {
            let groups: RedisValue
            do {
                groups = try await runner.send("XINFO", "GROUPS", stream)
            } catch let error as RedisError where error.source == .server {
                groups = .null  // no such stream
            }
            guard let id = Self.lastDeliveredID(in: groups, group: group) else {
                // The stream or the group vanished: recreate them and read again at once.
                try await ensureGroups(via: runner)
                return true
            }
            lastDelivered.append(id)
        }
        guard runner.isCluster, streams.count > 1 else {
            let command = Self.waitCommand(block: block, streams: streams, after: lastDelivered)
            return !(try await runner.send(command, timeout: block + .seconds(5))).isNull
        }
        let slice = max(.milliseconds(10), Self.clusterWaitSlice / streams.count)
        let deadline = ContinuousClock.now + block
        while ContinuousClock.now < deadline {
            for (stream, id) in zip(streams, lastDelivered) {
                let wait = min(slice, max(.milliseconds(1), deadline - ContinuousClock.now))
                let command = Self.waitCommand(block: wait, streams: [stream], after: [id])
                if !(try await runner.send(command, timeout: wait + .seconds(5))).isNull { return true }
                try Task.checkCancellation()
            }
        }
        return false
    }

    /// On a cluster, how long one round of per-stream waits lasts (see ``waitForUndelivered(block:streams:via:)``).
    static let clusterWaitSlice: Duration = .milliseconds(100)

    /// `XREAD COUNT 1 BLOCK <block> STREAMS <streams> <ids>`: returns when some stream has an
    /// entry after `ids`.
    private static func waitCommand(block: Duration, streams: [String], after ids: [String]) -> RedisCommand {
        RedisCommand(["XREAD", "COUNT", 1, "BLOCK", block.redisMilliseconds, "STREAMS"] + streams + ids)
    }

    /// `group`'s `last-delivered-id` in an `XINFO GROUPS` reply.
    private static func lastDeliveredID(in groups: RedisValue, group: String) -> String? {
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
    public func acknowledge(_ entry: StreamEntry, via runner: some RedisCommandRunner) async throws {
        try await runner.send("XACK", entry.stream, group, entry.id)
    }
}
