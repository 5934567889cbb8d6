/// An error from Redis or from the connection to it.
///
/// Server errors carry the error code Redis puts first in the message (`NOGROUP`, `BUSYGROUP`,
/// `NOSCRIPT`, `WRONGTYPE`, …), so callers can branch on ``code`` rather than parse text.
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where it came from.
    public enum Source: Sendable, Equatable {
        /// An error reply from the server (`-CODE message`).
        case server
        /// The socket failed, closed, or timed out; the context was discarded and is reopened on
        /// the next call.
        case connection
        /// The client refused the input (bad URL, unsupported option).
        case client
    }

    /// A Redis error code (the first word of an error reply).
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A generic error (`ERR …`).
        public static let err = Code(rawValue: "ERR")
        /// The stream or consumer group does not exist.
        public static let noGroup = Code(rawValue: "NOGROUP")
        /// `XGROUP CREATE` of a group that exists.
        public static let busyGroup = Code(rawValue: "BUSYGROUP")
        /// `EVALSHA` of a script the server does not have (after a restart or `SCRIPT FLUSH`).
        public static let noScript = Code(rawValue: "NOSCRIPT")
        /// An operation against a key holding the wrong kind of value.
        public static let wrongType = Code(rawValue: "WRONGTYPE")
        /// The server is loading its dataset; retry.
        public static let loading = Code(rawValue: "LOADING")
        /// A script is running too long; retry.
        public static let busy = Code(rawValue: "BUSY")
        /// The server is a replica.
        public static let readOnly = Code(rawValue: "READONLY")
        /// Authentication is required or failed.
        public static let noAuth = Code(rawValue: "NOAUTH")
        public static let wrongPass = Code(rawValue: "WRONGPASS")
        /// Over `maxmemory`.
        public static let outOfMemory = Code(rawValue: "OOM")
        /// Socket failure or closed connection (client-side code).
        public static let io = Code(rawValue: "IO")
        /// A call exceeded its timeout (client-side code).
        public static let timeout = Code(rawValue: "TIMEOUT")
        /// Malformed reply (client-side code).
        public static let proto = Code(rawValue: "PROTOCOL")
        /// Bad configuration or input refused before sending (client-side code).
        public static let invalidInput = Code(rawValue: "INVALID")
        /// No connection could be opened (refused, unreachable, set-up failed): nothing was sent
        /// (client-side code).
        public static let connect = Code(rawValue: "CONNECT")
        /// Too many commands already wait for replies on the connection (Redis is slow or
        /// stalled): refused before sending, nothing sent (client-side code; see
        /// ``RedisConfiguration/maxQueuedCommands``).
        public static let backlog = Code(rawValue: "BACKLOG")
    }

    public var source: Source
    public var code: Code
    public var message: String
    /// The command's name (never its arguments).
    public var command: String?

    public init(source: Source, code: Code, message: String, command: String? = nil) {
        self.source = source
        self.code = code
        self.message = message
        self.command = command
    }

    /// Builds a server error from a reply's text, e.g. `NOGROUP No such key 'x' or consumer group 'y'`.
    public init(reply text: String, command: String? = nil) {
        let first = text.prefix { $0 != " " }
        let isCode = !first.isEmpty && first.allSatisfy { $0.isUppercase || $0 == "_" }
        self.init(
            source: .server, code: isCode ? Code(rawValue: String(first)) : .err, message: text, command: command)
    }

    /// The command may have run: it was written (or partly written) to the server and no reply
    /// was read — the connection failed or timed out in the middle of the call. `false` when the
    /// failure came before anything was sent (``Code/connect``: no connection could be opened)
    /// and for error replies, which say the command was refused. A caller that must report the
    /// outcome (ingress answering a webhook) says "unknown" for these, not "refused".
    public var outcomeUnknown: Bool {
        source == .connection && code != .connect && code != .backlog
    }

    /// Whether trying again later may succeed: connection failures and timeouts, a server that is
    /// loading or busy with a script, or a failover in progress (`READONLY`, `MASTERDOWN`; in a
    /// Redis Cluster `CLUSTERDOWN` until a replica takes over, and `TRYAGAIN` while a slot's keys
    /// are split by a migration).
    public var isRetryable: Bool {
        switch source {
        case .connection: return true
        case .client: return false
        case .server:
            return [.loading, .busy, .readOnly, .tryAgain, .clusterDown, Code(rawValue: "MASTERDOWN")]
                .contains(code)
        }
    }

    public var description: String {
        let prefix = command.map { "Redis \($0): " } ?? "Redis: "
        switch source {
        case .server: return prefix + message
        case .connection, .client: return prefix + "\(code) \(message)"
        }
    }
}
