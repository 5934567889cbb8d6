import Dispatch
import LeaseholdPostgres
import LeaseholdReactor

/// One PostgreSQL session a test holds open across its steps (a transaction that keeps a row
/// locked while the system under test runs, a connection whose server, parameters or backend a
/// test looks at), callable from any task: each call hops to the session's own reactor, where its
/// ``PostgresConnection`` lives. A pool cannot do this: it rolls back a transaction left open
/// when it lends the connection again.
public final class PostgresSession: Sendable {
    public let connection: PostgresConnection
    private let reactor: Reactor

    private init(connection: PostgresConnection, reactor: Reactor) {
        self.connection = connection
        self.reactor = reactor
    }

    /// Opens a session (on a reactor of its own); close it with ``close()``.
    public static func open(_ configuration: PostgresConfiguration) async throws -> PostgresSession {
        let reactor = Reactor(label: "leasehold.test-session")
        do {
            let connection = try await withTaskExecutorPreference(reactor) {
                try await PostgresConnection.connect(configuration: configuration, reactor: reactor)
            }
            return PostgresSession(connection: connection, reactor: reactor)
        } catch {
            await shutDown(reactor)
            throw error
        }
    }

    /// Runs `body` with the connection, on its reactor.
    public func run<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await withTaskExecutorPreference(reactor) { try await body(connection) }
    }

    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await run { try await $0.query(query) }
    }

    @discardableResult
    public func simpleQuery(_ sql: String) async throws -> PostgresRows {
        try await run { try await $0.simpleQuery(sql) }
    }

    /// `host:port` of the server the session reached.
    public var server: String { get async { (try? await run { $0.server }) ?? "" } }
    /// See ``PostgresConnection/effectiveParameters``.
    public var effectiveParameters: [String: String] {
        get async { (try? await run { $0.effectiveParameters }) ?? [:] }
    }
    /// See ``PostgresConnection/backendPID``.
    public var backendPID: Int32 { get async { (try? await run { $0.backendPID }) ?? 0 } }

    /// Closes the connection and shuts the reactor down.
    public func close() async {
        await withTaskExecutorPreference(reactor) { connection.close() }
        await Self.shutDown(reactor)
    }

    private static func shutDown(_ reactor: Reactor) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                reactor.shutDown()
                done.resume()
            }
        }
    }
}
