/// What runs PostgreSQL statements: one ``PostgresConnection`` (each statement runs on it, in
/// whatever transaction it is in) or a ``PostgresClient`` (each call borrows one of its
/// pooled connections). Code that issues statements is written once, against this protocol, and
/// runs on either: `ScheduleSync().sync(slots, closeMissing: false, on: client)` inside a command,
/// `BookingTransaction().run(request, key: key, on: connection)` inside the worker's transaction.
///
/// A client may be used from any task (it hops to its reactor); a connection only from a task
/// running on its reactor, which is where the bodies of ``withConnection(_:)`` and
/// ``withTransaction(_:_:)`` run.
public protocol PostgresExecutor: Sendable {
    /// Runs one statement with its binds as parameters.
    @discardableResult
    func query(_ query: PostgresQuery) async throws -> PostgresRows

    /// Runs `query` as the prepared statement `name` of the connection it runs on (see
    /// ``PostgresConnection/query(_:preparedAs:)``): parsed and planned once per connection.
    @discardableResult
    func query(_ query: PostgresQuery, preparedAs name: String) async throws -> PostgresRows

    /// Runs SQL text with no parameters through the simple-query protocol, which allows several
    /// statements in one string. For fixed commands and migrations only.
    @discardableResult
    func simpleQuery(_ sql: String) async throws -> PostgresRows

    /// Runs `body` with one connection, lent to this task alone until `body` returns.
    func withConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T

    /// Runs `body` in one transaction on one connection (see
    /// ``PostgresConnection/withTransaction(_:_:)``); throws ``PostgresTransactionError``.
    func withTransaction<T>(
        _ options: PostgresTransactionOptions, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T
}

extension PostgresExecutor {
    /// Runs one statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ query: PostgresQuery) async throws -> Int {
        try await self.query(query).affectedRows
    }

    /// ``withTransaction(_:_:)`` with the default options.
    public func withTransaction<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await withTransaction(PostgresTransactionOptions(), body)
    }
}

extension PostgresConnection: PostgresExecutor {
    /// Runs `body` with this connection (already this task's).
    public func withConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await body(self)
    }
}

extension PostgresClient: PostgresExecutor {}

extension PostgresClient {
    /// Runs `body` on one connection to `configuration`, opened for it (on a reactor of its own)
    /// and closed afterwards with that reactor: for a probe or an administrative statement that
    /// belongs to no pool, such as waiting for a server to accept connections or creating a
    /// database. Throws what opening the connection or `body` threw.
    public static func withConnection<T>(
        to configuration: PostgresConfiguration, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        let client = PostgresClient(configuration: configuration, size: 1, label: "leasehold.postgres.once")
        let result: Result<T, any Error>
        do {
            result = .success(try await client.withConnection(body))
        } catch {
            result = .failure(error)
        }
        await client.close()
        return try result.get()
    }
}
