import CLibPQ
import Dispatch
import LeaseholdReactor
import Synchronization

// Opening a connection: non-blocking libpq connect with host names resolved off the reactor.

extension PostgresConnection {
    /// Opens a connection without blocking the reactor: `PQconnectStartParams` with the
    /// configuration's parameters (``PostgresConfiguration``), then `PQconnectPoll`, awaiting the socket as libpq
    /// asks. `connect_timeout` (``PostgresConfiguration/connectTimeoutSeconds``) bounds each
    /// attempt, as it does in libpq: the deadline starts again whenever libpq moves on to the next
    /// host or address (a new socket). One difference remains: with several hosts, libpq's blocking
    /// connect moves on to the next host when one attempt times out, while here a timeout ends the
    /// connect (libpq offers no public call to abandon one address from outside `PQconnectPoll`).
    /// A host that refuses the connection or is unreachable is still passed over at once.
    ///
    /// Host names are resolved first, off the reactor, by `resolver` (see ``NameResolver``), and
    /// libpq is given the addresses as `hostaddr` next to the names (see
    /// ``PostgresHostAddresses``), so it never calls `getaddrinfo` on the reactor's thread. The
    /// lookup is bounded by `connect_timeout` too: a name server that does not answer by then fails
    /// the connect with "name resolution timed out" naming the host (unless the name has
    /// addresses from an earlier lookup, which are used instead). Literal addresses and Unix-socket
    /// paths are not looked up.
    ///
    /// On the reactor's thread only. Throws ``PostgresError`` (class 08) when no server accepts the
    /// connection, `CancellationError` when the task is cancelled meanwhile.
    public static func connect(
        configuration: PostgresConfiguration, reactor: Reactor, resolver: NameResolver = .shared
    ) async throws -> PostgresConnection {
        precondition(reactor.isCurrent, "PostgresConnection.connect off its reactor's thread")
        let (keywords, values) = try await configuration.resolvedConnectParameters(
            resolver: resolver,
            deadline: configuration.connectTimeoutSeconds > 0
                ? .now + .seconds(configuration.connectTimeoutSeconds) : nil)
        let started = withCStringArray(keywords) { keywordPointers in
            withCStringArray(values) { valuePointers in PQconnectStartParams(keywordPointers, valuePointers, 1) }
        }
        guard let connection = started else {
            throw PostgresError(source: .connection, sqlState: SQLState.unableToConnect, message: "out of memory")
        }
        do {
            try await poll(connection, configuration: configuration, reactor: reactor)
        } catch {
            PQfinish(connection)
            throw error
        }
        let socket = PQsocket(connection)
        guard PQsetnonblocking(connection, 1) == 0, socket >= 0 else {
            let error = Libpq.connectError(connection, configuration: configuration)
            PQfinish(connection)
            throw error
        }
        lh_pg_silence_notices(connection)
        // Statements wait for their results with readableAgain: see Reactor's registrations.
        reactor.adopt(socket)
        return PostgresConnection(
            configuration: configuration, reactor: reactor, handle: connection, socket: socket)
    }

    /// Drives `PQconnectPoll` to the end. The socket leaves the reactor's epoll set after every
    /// wait, because libpq may close it and open another (next address, next host, SSL retry)
    /// with the same descriptor number.
    private static func poll(
        _ connection: OpaquePointer, configuration: PostgresConfiguration, reactor: Reactor
    ) async throws {
        let timeout = Duration.seconds(configuration.connectTimeoutSeconds)
        let clock = ContinuousClock()
        var socket: Int32 = -1
        var deadline = clock.now + timeout
        var status = PGRES_POLLING_WRITING  // what libpq documents for the state after connectStart
        while true {
            if PQstatus(connection) == CONNECTION_BAD { status = PGRES_POLLING_FAILED }
            switch status {
            case PGRES_POLLING_OK:
                return
            case PGRES_POLLING_FAILED:
                throw Libpq.connectError(connection, configuration: configuration)
            default:
                break
            }
            let current = PQsocket(connection)
            guard current >= 0 else { throw Libpq.connectError(connection, configuration: configuration) }
            if current != socket {
                socket = current
                deadline = clock.now + timeout
            }
            let ready: Bool
            do {
                ready = try await wait(
                    status == PGRES_POLLING_READING ? .readable : .writable, socket: socket,
                    until: configuration.connectTimeoutSeconds > 0 ? deadline : nil, reactor: reactor)
            } catch {
                reactor.forget(socket)
                throw error
            }
            reactor.forget(socket)
            guard ready else {
                throw PostgresError(
                    source: .connection, sqlState: SQLState.unableToConnect,
                    message:
                        "cannot connect to \(configuration.redactedConnectionString): timeout expired after \(configuration.connectTimeoutSeconds) s"
                )
            }
            status = PQconnectPoll(connection)
        }
    }

    /// What ``wait(_:socket:until:reactor:again:)`` waits for on a socket.
    enum Readiness { case readable, writable, readableOrWritable }

    /// Waits for `socket`, or for `deadline`: `false` when the deadline came first. `again`: the
    /// socket is the open connection's, which waits for input over and over, so a read wait
    /// leaves it registered with the reactor (``Reactor/readableAgain(_:deadline:)``); libpq
    /// never waits again on a socket it closed after losing the connection (`PQisBusy` is false
    /// then), and ``close()`` forgets the socket first when it is still libpq's.
    static func wait(
        _ readiness: Readiness, socket: Int32, until deadline: ContinuousClock.Instant?, reactor: Reactor,
        again: Bool = false
    ) async throws -> Bool {
        func ready() async throws {
            switch readiness {
            case .readable where again: _ = try await reactor.readableAgain(socket)
            case .readable: try await reactor.readable(socket)
            case .writable: try await reactor.writable(socket)
            case .readableOrWritable: try await reactor.readableOrWritable(socket)
            }
        }
        guard let deadline else {
            try await ready()
            return true
        }
        // Both children run on the reactor (they inherit the preference). Whichever ends first
        // cancels the other, and the group waits for it, so no wait on `socket` outlives this call.
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await ready()
                return true
            }
            group.addTask {
                try await Task.sleep(until: deadline, clock: .continuous)
                return false
            }
            defer { group.cancelAll() }
            return try await group.next() ?? false
        }
    }
}
