import CHiredis
import NIOConcurrencyHelpers

/// hiredis replies into Swift values.
enum RedisReply {
    /// Copies a reply tree into Swift values.
    static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let node = reply.pointee
        func bytes() -> [UInt8] {
            guard let str = node.str, node.len > 0 else { return [] }
            return str.withMemoryRebound(to: UInt8.self, capacity: node.len) {
                Array(UnsafeBufferPointer(start: $0, count: node.len))
            }
        }
        switch node.type {
        case lh_redis_reply_string():
            return .bulk(bytes())
        case lh_redis_reply_status():
            return .status(String(decoding: bytes(), as: UTF8.self))
        case lh_redis_reply_integer():
            return .integer(Int64(node.integer))
        case lh_redis_reply_nil():
            return .null
        case lh_redis_reply_error():
            return .error(RedisError(reply: String(decoding: bytes(), as: UTF8.self)))
        case lh_redis_reply_array():
            guard let elements = node.element else { return .array([]) }
            return .array(
                (0..<node.elements).map { index in
                    elements[index].map { copy($0) } ?? .null
                })
        default:
            return .error(RedisError(source: .connection, code: .proto, message: "unknown reply type \(node.type)"))
        }
    }
}

/// A Lua script, run by SHA with a `NOSCRIPT` fallback; share one instance per script.
public final class RedisScript: Sendable {
    public let source: String
    private let loadedSHA = NIOLockedValueBox<String?>(nil)

    public init(_ source: String) {
        self.source = source
    }

    /// The SHA1 the server gave on `SCRIPT LOAD`, once loaded.
    public var sha: String? {
        get { loadedSHA.withLockedValue { $0 } }
        set { loadedSHA.withLockedValue { $0 = newValue } }
    }
}
