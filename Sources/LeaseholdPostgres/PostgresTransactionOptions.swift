/// Options for one transaction.
public struct PostgresTransactionOptions: Sendable {
    public enum Isolation: Sendable {
        case readCommitted, repeatableRead, serializable
        var sql: String {
            switch self {
            case .readCommitted: "READ COMMITTED"
            case .repeatableRead: "REPEATABLE READ"
            case .serializable: "SERIALIZABLE"
            }
        }
    }

    public var isolation: Isolation
    public var readOnly: Bool
    /// How long one statement may wait for a row lock (`lock_timeout`); `nil` waits forever.
    /// Exceeding it fails with SQLSTATE 55P03, which is retryable.
    public var lockTimeout: Duration?
    /// How long one statement may run (`statement_timeout`); `nil` has no limit.
    public var statementTimeout: Duration?

    public init(
        isolation: Isolation = .readCommitted, readOnly: Bool = false, lockTimeout: Duration? = .seconds(5),
        statementTimeout: Duration? = .seconds(30)
    ) {
        self.isolation = isolation
        self.readOnly = readOnly
        self.lockTimeout = lockTimeout
        self.statementTimeout = statementTimeout
    }

    var lockTimeoutSetting: String { Self.milliseconds(lockTimeout) }
    var statementTimeoutSetting: String { Self.milliseconds(statementTimeout) }

    private static func milliseconds(_ duration: Duration?) -> String {
        guard let duration else { return "0" }
        return String(max(1, duration.milliseconds))
    }
}
