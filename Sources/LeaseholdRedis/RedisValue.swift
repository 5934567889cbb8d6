import Foundation
import LeaseholdCore

/// A RESP2 reply, copied out of hiredis's `redisReply` before it was freed.
public enum RedisValue: Sendable, Equatable {
    /// `+OK`-style status replies.
    case status(String)
    /// Bulk strings: arbitrary bytes, NUL included.
    case bulk([UInt8])
    case integer(Int64)
    case array([RedisValue])
    /// A nil bulk string or nil array (`GET` of a missing key, `XREADGROUP` that timed out).
    case null
    /// An error reply inside a pipeline or a script's array (top-level errors are thrown).
    case error(RedisError)

    /// The value as UTF-8 text (bulk or status), if it is one.
    public var string: String? {
        switch self {
        case .bulk(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        case .integer(let value): String(value)
        default: nil
        }
    }

    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let bytes): bytes
        case .status(let text): Array(text.utf8)
        default: nil
        }
    }

    /// The value as an integer: integer replies, or bulk strings holding one.
    public var int: Int64? {
        switch self {
        case .integer(let value): value
        case .bulk(let bytes): Int64(String(decoding: bytes, as: UTF8.self))
        default: nil
        }
    }

    public var array: [RedisValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    /// A flat `[name, value, name, value, …]` array (what `XINFO` and `HGETALL` answer in RESP2) as
    /// a dictionary by name; `nil` when this is not an array. Entries whose name is not a string
    /// are skipped; a trailing odd element is ignored.
    public var fieldMap: [String: RedisValue]? {
        guard let flat = array else { return nil }
        var fields: [String: RedisValue] = [:]
        for index in stride(from: 0, to: flat.count - 1, by: 2) {
            if let name = flat[index].string { fields[name] = flat[index + 1] }
        }
        return fields
    }

    public var isNull: Bool { self == .null }
}

/// Something that can be one argument of a Redis command, as bytes.
public protocol RedisArgument: Sendable {
    var redisBytes: [UInt8] { get }
}

extension String: RedisArgument {
    public var redisBytes: [UInt8] { Array(utf8) }
}

extension Substring: RedisArgument {
    public var redisBytes: [UInt8] { Array(utf8) }
}

extension Int: RedisArgument {
    public var redisBytes: [UInt8] { Array(String(self).utf8) }
}

extension Int64: RedisArgument {
    public var redisBytes: [UInt8] { Array(String(self).utf8) }
}

extension [UInt8]: RedisArgument {
    public var redisBytes: [UInt8] { self }
}

extension Data: RedisArgument {
    public var redisBytes: [UInt8] { Array(self) }
}

/// One command: its arguments as bytes, built from any ``RedisArgument``s.
public struct RedisCommand: Sendable, Equatable {
    public var arguments: [[UInt8]]

    public init(_ arguments: [any RedisArgument]) {
        self.arguments = arguments.map(\.redisBytes)
    }

    public init(_ arguments: any RedisArgument...) {
        self.init(arguments)
    }

    /// The command name, for errors and logs (never the arguments, which may hold payloads).
    public var name: String {
        arguments.first.map { String(decoding: $0, as: UTF8.self).uppercased() } ?? ""
    }
}

extension Duration {
    /// Whole milliseconds, at least 1 (Redis `PX`, `BLOCK` and timeouts take milliseconds).
    public var redisMilliseconds: Int64 {
        max(1, milliseconds)
    }
}
