import CHiredis
import Foundation
import LeaseholdReactor

// Opening a connection: a non-blocking hiredis connect with host names resolved off the reactor.

extension RedisConnection {
    /// Opens a connection without blocking the reactor: the host name is resolved off the reactor
    /// by `resolver` (see ``NameResolver``), then `redisConnectNonBlock` is given an address, and
    /// the socket is awaited until writable, bounded by the configuration's `connectTimeout`; then
    /// `AUTH` and `SELECT` as the configuration asks.
    ///
    /// The lookup is bounded by `connectTimeout` too: a name server that does not answer by then
    /// fails the connect with "name resolution timed out" naming the host (unless the name has
    /// addresses from an earlier lookup, which are used instead). A literal address is not looked
    /// up. Of several addresses, the IPv4 ones are tried first (as hiredis does with a name), in
    /// order: an address that refuses the connection or is unreachable is passed over for the next
    /// one, while a timeout ends the connect.
    ///
    /// On the reactor's thread only. Throws ``RedisError`` with code ``RedisError/Code/connect``
    /// when the name does not resolve, or the server cannot be reached, refuses the connection, or
    /// refuses `AUTH` / `SELECT` (nothing of the caller's was sent), `CancellationError` when the
    /// task is cancelled meanwhile.
    public static func connect(
        configuration: RedisConfiguration, reactor: Reactor, resolver: NameResolver = .shared
    ) async throws -> RedisConnection {
        precondition(reactor.isCurrent, "RedisConnection.connect off its reactor's thread")
        ignoreBrokenPipes
        try Task.checkCancellation()
        func failed(_ reason: String) -> RedisError {
            RedisError(
                source: .connection, code: .connect,
                message: "cannot connect to \(configuration.redactedURL): \(reason)")
        }
        let addresses: [String]
        do {
            let found = try await resolver.addresses(
                of: configuration.host, deadline: .now + configuration.connectTimeout)
            addresses = found.filter { !$0.contains(":") } + found.filter { $0.contains(":") }
        } catch let error as NameResolutionError {
            throw failed(error.description)
        }
        var context: UnsafeMutablePointer<redisContext>?
        var lastError: RedisError?
        for address in addresses {
            switch try await open(address, configuration: configuration, reactor: reactor, failed: failed) {
            case .success(let opened): context = opened
            case .failure(let error): lastError = error  // refused or unreachable: the next address, if any
            }
            if context != nil { break }
        }
        guard let context else { throw lastError ?? failed("no address") }
        let socket = lh_redis_fd(context)
        // Replies are awaited with readableAgain: see Reactor's registrations.
        reactor.adopt(socket)
        let connection = RedisConnection(configuration: configuration, reactor: reactor, context: context)
        guard connection.writeSocket >= 0 else {
            let error = failed("dup: \(String(cString: strerror(errno)))")
            connection.close()
            throw error
        }
        do {
            if let password = configuration.password {
                if let username = configuration.username {
                    try await connection.send(RedisCommand("AUTH", username, password))
                } else {
                    try await connection.send(RedisCommand("AUTH", password))
                }
            }
            if configuration.database != 0 { try await connection.send(RedisCommand("SELECT", configuration.database)) }
        } catch var error as RedisError {
            connection.close()
            // The caller's command was never sent: whatever failed was the connection's set-up.
            error.code = .connect
            throw error
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    /// Opens a socket to `address` (a literal address: hiredis resolves nothing) and waits until
    /// it is connected; the context is the caller's. A refusal or an unreachable address is a
    /// `failure` (the caller tries the next address); a timeout is thrown.
    private static func open(
        _ address: String, configuration: RedisConfiguration, reactor: Reactor, failed: (String) -> RedisError
    ) async throws -> Result<UnsafeMutablePointer<redisContext>, RedisError> {
        guard let context = redisConnectNonBlock(address, Int32(configuration.port)) else {
            throw RedisError(source: .connection, code: .connect, message: "cannot allocate a hiredis context")
        }
        if lh_redis_err(context) != 0 {
            let error = failed("\(address): \(String(cString: lh_redis_errstr(context)))")
            redisFree(context)
            return .failure(error)
        }
        let socket = lh_redis_fd(context)
        // hiredis opens the socket without close-on-exec; set it before anything is sent, so
        // child processes started later do not inherit the connection.
        _ = fcntl(socket, F_SETFD, fcntl(socket, F_GETFD) | FD_CLOEXEC)
        let ready: Bool
        do {
            ready = try await reactor.writable(socket, deadline: .now + configuration.connectTimeout)
        } catch {
            reactor.forget(socket)
            redisFree(context)
            throw error
        }
        var problem: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        if !ready || getsockopt(socket, SOL_SOCKET, SO_ERROR, &problem, &size) != 0 || problem != 0 {
            reactor.forget(socket)
            redisFree(context)
            guard ready else { throw failed("timeout expired after \(configuration.connectTimeout)") }
            return .failure(failed("\(address): \(String(cString: strerror(problem == 0 ? errno : problem)))"))
        }
        return .success(context)
    }
}

/// hiredis writes with `write(2)`, which raises `SIGPIPE` on a socket the server closed; that
/// must be an error return, not the end of the process. Ignored process-wide, once (SwiftNIO does
/// the same for its sockets).
private let ignoreBrokenPipes: Void = {
    _ = signal(SIGPIPE, SIG_IGN)
}()
