/// Where a command's keys are, so a ``RedisClusterClient`` can send it to the node serving them.
///
/// Knows the commands Leasehold uses and their common relatives. A command it does not know is
/// refused rather than guessed at: send it with ``RedisClusterClient/send(_:keys:timeout:)``,
/// naming its keys.
public enum RedisClusterKeys {
    /// The keys of `command`; empty for a command that touches none (`PING`, `INFO`, `CLUSTER …`),
    /// which any node can answer.
    ///
    /// - Throws: a client error (``RedisError/Code/invalidInput``) for a command this table does
    ///   not know or whose arguments do not say where its keys are (`EVAL` with a bad key count).
    public static func keys(of command: RedisCommand) throws(RedisError) -> [[UInt8]] {
        let arguments = command.arguments
        let name = command.name
        func invalid(_ reason: String) -> RedisError {
            RedisError(source: .client, code: .invalidInput, message: reason, command: name)
        }
        guard let layout = layouts[name] else {
            throw invalid(
                "the cluster client does not know where the keys of \(name.isEmpty ? "an empty command" : name) are; "
                    + "send it with its keys named")
        }
        switch layout {
        case .none:
            return []
        case .first:
            guard arguments.count > 1 else { throw invalid("\(name) without a key") }
            return [arguments[1]]
        case .second:
            guard arguments.count > 2 else { throw invalid("\(name) without a key") }
            return [arguments[2]]
        case .firstTwo:
            guard arguments.count > 2 else { throw invalid("\(name) needs two keys") }
            return [arguments[1], arguments[2]]
        case .all:
            guard arguments.count > 1 else { throw invalid("\(name) without a key") }
            return Array(arguments[1...])
        case .allButLast:
            guard arguments.count > 2 else { throw invalid("\(name) without a key") }
            return Array(arguments[1..<(arguments.count - 1)])
        case .everyOther:
            guard arguments.count > 1, arguments.count % 2 == 1 else { throw invalid("\(name) needs key value pairs") }
            return stride(from: 1, to: arguments.count, by: 2).map { arguments[$0] }
        case .counted:
            guard arguments.count > 2, let count = Int(String(decoding: arguments[2], as: UTF8.self)), count >= 0,
                arguments.count >= 3 + count
            else { throw invalid("\(name) needs a key count that its arguments hold") }
            return Array(arguments[3..<(3 + count)])
        case .streams:
            // XREAD / XREADGROUP …  STREAMS key1 key2 … id1 id2 …
            // XREADGROUP's group and consumer names come first and may be any word, STREAMS included.
            let searchFrom = name == "XREADGROUP" ? min(4, arguments.count) : 1
            guard
                let streams = arguments[searchFrom...].firstIndex(where: {
                    $0.asciiUppercased == Array("STREAMS".utf8)
                })
            else {
                throw invalid("\(name) without STREAMS")
            }
            let rest = arguments[(streams + 1)...]
            guard !rest.isEmpty, rest.count % 2 == 0 else { throw invalid("\(name) needs as many IDs as streams") }
            return Array(rest.prefix(rest.count / 2))
        }
    }

    /// The one slot every key hashes to; `nil` for no keys.
    ///
    /// - Throws: a client error with code ``RedisError/Code/crossSlot`` when the keys hash to
    ///   different slots (a cluster node refuses such a command or script).
    public static func slot(of keys: [[UInt8]], command: String) throws(RedisError) -> Int? {
        guard let first = keys.first else { return nil }
        let slot = RedisClusterSlot.slot(forKeyBytes: first)
        for key in keys.dropFirst() {
            let other = RedisClusterSlot.slot(forKeyBytes: key)
            guard other == slot else {
                throw RedisError(
                    source: .client, code: .crossSlot,
                    message:
                        "\(keys.count) keys in slots \(slot) and \(other): in a cluster one command or script may "
                        + "touch only keys of one slot; give them a common hash tag ({…})",
                    command: command)
            }
        }
        return slot
    }

    private enum Layout {
        /// No key.
        case none
        /// The first argument.
        case first
        /// The second argument (after a subcommand).
        case second
        /// The first two arguments.
        case firstTwo
        /// Every argument.
        case all
        /// Every argument but the last (a timeout).
        case allButLast
        /// Key value key value …
        case everyOther
        /// A key count, then that many keys (`EVAL script numkeys key …`).
        case counted
        /// The first half of what follows `STREAMS`.
        case streams
    }

    private static let layouts: [String: Layout] = {
        var layouts: [String: Layout] = [:]
        for name in ["PING", "ECHO", "TIME", "INFO", "CLUSTER", "COMMAND", "ROLE", "LASTSAVE"] {
            layouts[name] = Layout.none
        }
        let firstKey = [
            // strings and keys
            "GET", "SET", "SETNX", "SETEX", "PSETEX", "GETSET", "GETDEL", "GETEX", "INCR", "INCRBY", "INCRBYFLOAT",
            "DECR", "DECRBY", "APPEND", "STRLEN", "SETRANGE", "GETRANGE", "EXPIRE", "PEXPIRE", "EXPIREAT",
            "PEXPIREAT", "EXPIRETIME", "PEXPIRETIME", "PERSIST", "TTL", "PTTL", "TYPE", "DUMP", "RESTORE",
            // hashes
            "HSET", "HSETNX", "HGET", "HMGET", "HMSET", "HDEL", "HEXISTS", "HGETALL", "HKEYS", "HVALS", "HLEN",
            "HINCRBY", "HINCRBYFLOAT", "HSCAN", "HSTRLEN", "HRANDFIELD",
            // lists
            "LPUSH", "RPUSH", "LPUSHX", "RPUSHX", "LPOP", "RPOP", "LRANGE", "LLEN", "LTRIM", "LINDEX", "LSET", "LREM",
            "LPOS", "LINSERT",
            // sets
            "SADD", "SREM", "SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD", "SPOP", "SRANDMEMBER", "SSCAN",
            // sorted sets
            "ZADD", "ZREM", "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZRANGEBYLEX", "ZCARD",
            "ZSCORE", "ZMSCORE", "ZINCRBY", "ZRANK", "ZREVRANK", "ZCOUNT", "ZPOPMIN", "ZPOPMAX", "ZREMRANGEBYSCORE",
            "ZREMRANGEBYRANK", "ZSCAN",
            // streams
            "XADD", "XLEN", "XRANGE", "XREVRANGE", "XDEL", "XTRIM", "XACK", "XCLAIM", "XAUTOCLAIM", "XPENDING",
            "XSETID",
        ]
        for name in firstKey { layouts[name] = .first }
        for name in ["XGROUP", "XINFO", "OBJECT"] { layouts[name] = .second }
        for name in ["RENAME", "RENAMENX", "RPOPLPUSH", "LMOVE", "SMOVE", "COPY"] { layouts[name] = .firstTwo }
        for name in ["DEL", "UNLINK", "EXISTS", "MGET", "TOUCH", "WATCH"] { layouts[name] = .all }
        for name in ["BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"] { layouts[name] = .allButLast }
        for name in ["MSET", "MSETNX"] { layouts[name] = .everyOther }
        for name in ["EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"] { layouts[name] = .counted }
        for name in ["XREAD", "XREADGROUP"] { layouts[name] = .streams }
        return layouts
    }()
}

extension RedisError.Code {
    /// The keys of one command or script hash to different slots (from a cluster node, or refused
    /// by the client before sending).
    public static let crossSlot = RedisError.Code(rawValue: "CROSSSLOT")
    /// A cluster node does not serve the key's slot; the reply names the node that does.
    public static let moved = RedisError.Code(rawValue: "MOVED")
    /// The key's slot is being migrated and the key may be on the node the reply names: ask there,
    /// once, after `ASKING`.
    public static let ask = RedisError.Code(rawValue: "ASK")
    /// A multi-key command during a slot migration whose keys are split between two nodes; retry.
    public static let tryAgain = RedisError.Code(rawValue: "TRYAGAIN")
    /// The cluster cannot serve the slot now (a master failed and no replica has taken over yet).
    public static let clusterDown = RedisError.Code(rawValue: "CLUSTERDOWN")
    /// The cluster client followed as many redirects or retried as many times as it may
    /// (client-side code).
    public static let tooManyRedirects = RedisError.Code(rawValue: "TOOMANYREDIRECTS")
}

extension [UInt8] {
    fileprivate var asciiUppercased: [UInt8] {
        map { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) ? $0 - 32 : $0 }
    }
}
