import ConnectionPool
import Logging

/// A pool of ``PostgresConnection``s with an async API.
///
/// Every call runs synchronously on one pooled connection's dedicated queue (see
/// ``BlockingConnectionPool`` for why that keeps libpq off Swift's cooperative pool and never
/// shares a `PGconn` across an `await`). Cancelling the calling task cancels the running
/// statement (`PQcancel`), which then fails with SQLSTATE 57014.
///
/// A connection lost to a server restart is replaced the next time it is lent out: the call in
/// flight fails with a retryable class-08 error, the calls after it reconnect. So is one whose
/// server turned out read-only (SQLSTATE 25006): with several hosts in the connection string, the
/// new connection goes to whichever node accepts writes (``PostgresConfiguration``).
public final class PostgresClient: Sendable {
    public let configuration: PostgresConfiguration
    private let pool: BlockingConnectionPool<PostgresConnection>

    /// - Parameter size: the maximum number of connections (opened lazily).
    public init(configuration: PostgresConfiguration, size: Int = 4) {
        self.configuration = configuration
        self.pool = BlockingConnectionPool(size: size, label: "leasehold.postgres") {
            try PostgresConnection(configuration: configuration)
        }
    }

    public var size: Int { pool.size }

    /// Runs `body` with one connection, on that connection's thread.
    public func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        try await pool.withConnection(body)
    }

    /// Runs one statement.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await pool.withConnection { try $0.query(query) }
    }

    /// Runs one statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ query: PostgresQuery) async throws -> Int {
        try await pool.withConnection { try $0.execute(query) }
    }

    /// Runs `body` in one transaction on one connection. Throws ``PostgresTransactionError``.
    public func withTransaction<T: Sendable>(
        _ options: PostgresTransactionOptions = PostgresTransactionOptions(),
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        try await pool.withConnection { connection in
            try connection.withTransaction(options, body)
        }
    }

    /// Closes every connection; calls after this fail.
    public func close() async {
        await pool.close()
    }
}
