/// A `MOVED` or `ASK` error reply from a cluster node: the slot and the node to go to.
///
/// `MOVED 3999 127.0.0.1:6381` says slot 3999 is now served by that node for good (update the
/// map); `ASK 3999 127.0.0.1:6381` says the slot is being migrated there and this one key may
/// already be there: send `ASKING` and then the command to that node, once, without updating the
/// map. An endpoint with an empty host (`MOVED 3999 :6381`) is on the host of the node that
/// answered.
public struct RedisClusterRedirect: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case moved
        case ask
    }

    public var kind: Kind
    public var slot: Int
    public var node: RedisNodeAddress

    public init(kind: Kind, slot: Int, node: RedisNodeAddress) {
        self.kind = kind
        self.slot = slot
        self.node = node
    }

    /// The redirect `error` carries, or `nil` if it is not a well-formed `MOVED` / `ASK` reply.
    ///
    /// - Parameter answering: the node that replied.
    public init?(_ error: RedisError, from answering: RedisNodeAddress) {
        guard error.source == .server, error.code == .moved || error.code == .ask else { return nil }
        let words = error.message.split(separator: " ")
        guard words.count >= 3, let slot = Int(words[1]), (0..<RedisClusterSlot.count).contains(slot),
            let colon = words[2].lastIndex(of: ":"), let port = Int(words[2][words[2].index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(words[2][..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = answering.host }
        self.init(
            kind: error.code == .moved ? .moved : .ask, slot: slot, node: RedisNodeAddress(host: host, port: port))
    }
}
