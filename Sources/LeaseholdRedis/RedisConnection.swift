import CHiredis
import ConnectionPool
import Foundation
import NIOConcurrencyHelpers

/// One hiredis connection (`redisContext`, RESP2), with a blocking, synchronous API.
///
/// ## Ownership
///
/// This class is the single owner of its `redisContext`: it opens it, frees it exactly once, and
/// never hands the pointer out. It is not `Sendable`: in Leasehold every instance belongs to one
/// ``BlockingConnectionPool`` slot and is only touched on that slot's dedicated queue, through
/// ``RedisClient/withConnection(_:)``, so it is used by one thread at a time and never across an
/// `await`. Replies are copied into ``RedisValue`` before `freeReplyObject`; argument buffers are
/// pinned only for the duration of `redisCommandArgv` / `redisAppendCommandArgv`.
///
/// hiredis documents a context as unusable after any I/O error (including a timeout), so on such
/// an error the context is freed at once and a new one is opened on the next call.
public final class RedisConnection: BlockingConnection {
    private var context: UnsafeMutablePointer<redisContext>?
    public let configuration: RedisConfiguration

    /// Opens a connection (blocking, bounded by `connectTimeout`), authenticates and selects the
    /// database.
    public init(configuration: RedisConfiguration) throws(RedisError) {
        self.configuration = configuration
        try open()
    }

    deinit {
        close()
    }

    /// The open connection's socket (internal: the tests look at its flags).
    var socket: Int32? { context.map { lh_redis_fd($0) } }

    // MARK: BlockingConnection

    public func close() {
        if let context {
            redisFree(context)
            self.context = nil
        }
    }

    /// Replaces the context if the server closed it while it sat idle (a restart): an idle RESP2
    /// connection has nothing to read, so a readable or hung-up socket means it is dead.
    public func isReusable() -> Bool {
        guard let context else { return true }  // reopened lazily by the next call
        var descriptor = pollfd(fd: lh_redis_fd(context), events: Int16(POLLIN), revents: 0)
        if poll(&descriptor, 1, 0) != 0 {
            close()
        }
        return true
    }

    public var interrupter: (any ConnectionInterrupter)? { nil }

    // MARK: Commands

    /// Sends one command and waits for its reply.
    ///
    /// - Parameter timeout: bound on this call (for blocking commands such as `XREADGROUP BLOCK`,
    ///   pass more than the block time); `nil` uses the configured `commandTimeout`.
    /// - Throws: ``RedisError`` with source `.server` for an error reply (the connection stays
    ///   usable), `.connection` for I/O errors and timeouts (the context is replaced).
    @discardableResult
    public func send(_ command: RedisCommand, timeout: Duration? = nil) throws(RedisError) -> RedisValue {
        let context = try requireContext(command.name)
        if let timeout { setTimeout(context, timeout) }
        defer { if timeout != nil, let current = self.context { setTimeout(current, configuration.commandTimeout) } }

        let reply = withArgv(command.arguments) { argc, argv, lengths in
            redisCommandArgv(context, argc, argv, lengths)
        }
        guard let reply else { throw ioFailure(context, command: command.name) }
        let value = Self.copyReply(reply.assumingMemoryBound(to: redisReply.self))
        freeReplyObject(reply)
        if case .error(let error) = value {
            var error = error
            error.command = command.name
            throw error
        }
        return value
    }

    /// Sends one command given as arguments.
    @discardableResult
    public func send(_ arguments: any RedisArgument...) throws(RedisError) -> RedisValue {
        try send(RedisCommand(arguments))
    }

    /// Sends every command in one write and reads every reply, in order: one round trip.
    ///
    /// Error replies come back in place as ``RedisValue/error(_:)``; an I/O error throws (the
    /// context is replaced and the pipeline's outcome on the server is unknown).
    public func pipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        let context = try requireContext("pipeline")
        for command in commands {
            let status = withArgv(command.arguments) { argc, argv, lengths in
                redisAppendCommandArgv(context, argc, argv, lengths)
            }
            guard status == lh_redis_ok() else {
                // Only buffered so far (the write comes with the first read): nothing was sent.
                var error = ioFailure(context, command: command.name)
                error.code = .connect
                throw error
            }
        }
        var replies: [RedisValue] = []
        replies.reserveCapacity(commands.count)
        for command in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == lh_redis_ok(), let reply = raw else {
                throw ioFailure(context, command: command.name)
            }
            var value = Self.copyReply(reply.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(reply)
            if case .error(var error) = value {
                error.command = command.name
                value = .error(error)
            }
            replies.append(value)
        }
        return replies
    }

    /// Runs a Lua script by SHA (`EVALSHA`), loading it first if this server does not have it
    /// (`NOSCRIPT` after a restart or `SCRIPT FLUSH`).
    @discardableResult
    public func evaluate(
        _ script: RedisScript, keys: [any RedisArgument] = [], arguments: [any RedisArgument] = []
    ) throws(RedisError) -> RedisValue {
        let tail: [any RedisArgument] = [keys.count] + keys + arguments
        if let sha = script.sha {
            do {
                return try send(RedisCommand(["EVALSHA", sha] + tail))
            } catch  where error.code == .noScript {
                // fall through to load it
            }
        }
        let loaded = try send("SCRIPT", "LOAD", script.source)
        guard let sha = loaded.string else {
            throw RedisError(source: .server, code: .proto, message: "SCRIPT LOAD returned \(loaded)")
        }
        script.sha = sha
        do {
            return try send(RedisCommand(["EVALSHA", sha] + tail))
        } catch  where error.code == .noScript {
            // Flushed again between LOAD and EVALSHA: send the source itself.
            return try send(RedisCommand(["EVAL", script.source] + tail))
        }
    }

    // MARK: Private

    private func open() throws(RedisError) {
        let tv = lh_timeval_ms(configuration.connectTimeout.redisMilliseconds)
        guard let context = redisConnectWithTimeout(configuration.host, Int32(configuration.port), tv) else {
            throw RedisError(source: .connection, code: .connect, message: "cannot allocate a hiredis context")
        }
        if lh_redis_err(context) != 0 {
            let message = String(cString: lh_redis_errstr(context))
            redisFree(context)
            throw RedisError(
                source: .connection, code: .connect,
                message: "cannot connect to \(configuration.redactedURL): \(message)")
        }
        // hiredis opens the socket without close-on-exec: child processes (`leasehold local` and
        // `demo` start several) must not inherit the connection.
        let socket = lh_redis_fd(context)
        _ = fcntl(socket, F_SETFD, fcntl(socket, F_GETFD) | FD_CLOEXEC)
        setTimeout(context, configuration.commandTimeout)
        self.context = context
        do {
            if let password = configuration.password {
                if let username = configuration.username {
                    try send("AUTH", username, password)
                } else {
                    try send("AUTH", password)
                }
            }
            if configuration.database != 0 { try send("SELECT", configuration.database) }
        } catch {
            close()
            // The caller's command was never sent: whatever failed was the connection's set-up.
            var error = error
            if error.source == .connection { error.code = .connect }
            throw error
        }
    }

    private func requireContext(_ command: String) throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        if context == nil { try open() }
        guard let context else {
            throw RedisError(source: .connection, code: .connect, message: "no connection", command: command)
        }
        return context
    }

    /// Builds the error for a failed call and discards the context, which hiredis says is
    /// unusable after an I/O or protocol error.
    private func ioFailure(_ context: UnsafeMutablePointer<redisContext>, command: String) -> RedisError {
        let err = lh_redis_err(context)
        var message = String(cString: lh_redis_errstr(context))
        if message.isEmpty { message = "connection lost" }
        let timedOut = message.contains("Resource temporarily unavailable") || message.contains("timed out")
        let code: RedisError.Code = err == REDIS_ERR_PROTOCOL ? .proto : (timedOut ? .timeout : .io)
        close()
        return RedisError(source: .connection, code: code, message: message, command: command)
    }

    private func setTimeout(_ context: UnsafeMutablePointer<redisContext>, _ duration: Duration) {
        _ = redisSetTimeout(context, lh_timeval_ms(duration.redisMilliseconds))
    }

    /// Copies a reply tree into Swift values.
    static func copyReply(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
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
                    elements[index].map { copyReply($0) } ?? .null
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
