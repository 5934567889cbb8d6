/// How to reach PostgreSQL. Every field has a default; `POSTGRES_URL` is the usual source.
public struct PostgresConfiguration: Sendable {
    /// A libpq connection URL (`postgres://user:password@host:5432/db?sslmode=disable`) or a
    /// `key=value` conninfo string. Whatever it says wins over the fields below.
    public var connectionString: String
    /// Seconds to wait for a connection to open.
    public var connectTimeoutSeconds: Int
    /// Shown in `pg_stat_activity.application_name`.
    public var applicationName: String

    public init(
        connectionString: String = "postgres://postgres@127.0.0.1:5432/leasehold",
        connectTimeoutSeconds: Int = 5,
        applicationName: String = "leasehold"
    ) {
        self.connectionString = connectionString
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.applicationName = applicationName
    }

    /// The connection string with any password replaced by `***`, for logs and errors.
    public var redactedConnectionString: String { Self.redact(connectionString) }

    static func redact(_ text: String) -> String {
        // URL form: scheme://user:password@host
        if let schemeEnd = text.range(of: "://"), let at = text[schemeEnd.upperBound...].firstIndex(of: "@") {
            let userInfo = text[schemeEnd.upperBound..<at]
            if let colon = userInfo.firstIndex(of: ":") {
                return String(text[..<colon]) + ":***" + String(text[at...])
            }
            return text
        }
        // conninfo form: password=secret
        return text.split(separator: " ").map { part in
            part.hasPrefix("password=") ? "password=***" : String(part)
        }.joined(separator: " ")
    }
}
