/// Which node serves each hash slot of a Redis Cluster: a snapshot of `CLUSTER SLOTS`.
///
/// A value: the ``RedisClusterClient`` replaces its map after a refresh and patches one slot after
/// a `MOVED` redirect, never mutating a map another task is reading.
public struct RedisClusterMap: Sendable, Equatable {
    /// A run of consecutive slots and the nodes serving it.
    public struct SlotRange: Sendable, Equatable {
        public var slots: ClosedRange<Int>
        /// The node that takes writes for these slots.
        public var master: RedisNodeAddress
        /// Its replicas, as the node that answered knew them (possibly not yet in sync).
        public var replicas: [RedisNodeAddress]

        public init(slots: ClosedRange<Int>, master: RedisNodeAddress, replicas: [RedisNodeAddress] = []) {
            self.slots = slots
            self.master = master
            self.replicas = replicas
        }
    }

    /// The ranges as the server listed them (not updated by ``moving(slot:to:)``).
    public private(set) var ranges: [SlotRange]
    /// Every master the map has named, in order of first appearance (after ``moving(slot:to:)``
    /// one may serve no slot any more).
    public private(set) var masters: [RedisNodeAddress]
    /// `masters` index per slot, -1 for a slot no node serves.
    private var owners: [Int16]

    /// A map from ranges; later ranges win where ranges overlap.
    public init(ranges: [SlotRange]) {
        self.ranges = ranges
        self.masters = []
        self.owners = Array(repeating: -1, count: RedisClusterSlot.count)
        for range in ranges {
            let index = masterIndex(range.master)
            for slot in range.slots { owners[slot] = index }
        }
    }

    /// Parses a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, …], [replica host, port, id,
    /// …], …], …]`.
    ///
    /// - Parameter queried: the node that answered. A node whose endpoint is NULL or empty (the
    ///   server does not know the address clients reach it by) is taken to be on `queried`'s host;
    ///   a node shown as `?` (no endpoint of the configured type) cannot be reached and is left
    ///   out, and a range whose master is one of those stays unserved.
    public init(clusterSlotsReply reply: RedisValue, queried: RedisNodeAddress) throws(RedisError) {
        func malformed(_ detail: String) -> RedisError {
            RedisError(source: .client, code: .proto, message: "unexpected CLUSTER SLOTS reply: \(detail)")
        }
        guard let entries = reply.array else { throw malformed("not an array") }
        var ranges: [SlotRange] = []
        for entry in entries {
            guard let fields = entry.array, fields.count >= 3, let start = fields[0].int, let end = fields[1].int,
                0 <= start, start <= end, end < RedisClusterSlot.count
            else { throw malformed("bad range \(entry)") }
            var nodes: [RedisNodeAddress?] = []
            for field in fields[2...] {
                guard let node = field.array, node.count >= 2, let port = node[1].int, (1...65535).contains(port)
                else { throw malformed("bad node \(field)") }
                let host: String? =
                    switch node[0] {
                    case .null: queried.host
                    case let value where value.string == "": queried.host
                    case let value where value.string == "?": nil
                    case let value: value.string
                    }
                nodes.append(host.map { RedisNodeAddress(host: $0, port: Int(port)) })
            }
            guard let master = nodes[0] else { continue }
            ranges.append(
                SlotRange(slots: Int(start)...Int(end), master: master, replicas: nodes.dropFirst().compactMap { $0 }))
        }
        self.init(ranges: ranges)
    }

    /// The master serving `slot`, or `nil` if no node serves it.
    public func master(forSlot slot: Int) -> RedisNodeAddress? {
        let index = owners[slot]
        return index < 0 ? nil : masters[Int(index)]
    }

    /// Whether every slot has a master.
    public var coversEverySlot: Bool { !owners.contains(-1) }

    /// This map with `slot` served by `node`, as a `MOVED` redirect says.
    public func moving(slot: Int, to node: RedisNodeAddress) -> RedisClusterMap {
        var map = self
        map.owners[slot] = map.masterIndex(node)
        return map
    }

    /// Every node the map names, masters first.
    public var nodes: [RedisNodeAddress] {
        var seen = Set(masters)
        var all = masters
        for replica in ranges.flatMap(\.replicas) where seen.insert(replica).inserted { all.append(replica) }
        return all
    }

    private mutating func masterIndex(_ node: RedisNodeAddress) -> Int16 {
        if let index = masters.firstIndex(of: node) { return Int16(index) }
        masters.append(node)
        return Int16(masters.count - 1)
    }
}
