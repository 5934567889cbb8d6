import LeaseholdQueue
import LeaseholdWire

/// How `leasehold console` runs. Every field but the token has a default; the command fills them
/// from flags and the environment.
public struct ConsoleConfiguration: Sendable {
    /// Listen address (`LEASEHOLD_CONSOLE_HOST`).
    public var host: String
    /// Listen port (`LEASEHOLD_CONSOLE_PORT`).
    public var port: Int
    /// The shared secret operators log in with (`LEASEHOLD_CONSOLE_TOKEN`); it also keys the
    /// session cookies' and CSRF tokens' HMACs, so every replica accepts every other's sessions
    /// and changing it logs everyone out.
    public var token: String
    /// No replay and no purge: the action forms are not shown and their routes answer 403.
    public var readOnly: Bool
    public var keys: RedisKeys
    /// The streams shown, by source name.
    public var sources: [String]
    /// How long a login lasts.
    public var sessionLifetime: Duration
    /// Mark the cookies `Secure` (only sent over HTTPS): set it when the console is served over TLS.
    public var secureCookies: Bool
    /// Dead letters per page.
    public var pageSize: Int
    /// What the pages show of dead letters' payloads (`LEASEHOLD_REDACT_FIELDS`): the
    /// default list's values are replaced unless an operator reveals one letter (audited).
    public var redactor: PayloadRedactor

    // The defaults of the settings `leasehold console` reads (its `--help` shows these).

    /// ``host``'s default: every interface.
    public static let defaultHost = "0.0.0.0"
    /// ``port``'s default.
    public static let defaultPort = 8090
    /// ``readOnly``'s default: the actions are on.
    public static let defaultReadOnly = false
    /// ``sessionLifetime``'s default: 12 hours.
    public static let defaultSessionLifetime: Duration = .seconds(12 * 3600)
    /// ``secureCookies``'s default: off, for plain HTTP.
    public static let defaultSecureCookies = false

    public init(
        host: String = ConsoleConfiguration.defaultHost, port: Int = ConsoleConfiguration.defaultPort, token: String,
        readOnly: Bool = ConsoleConfiguration.defaultReadOnly, keys: RedisKeys = RedisKeys(),
        sources: [String] = ["telegram", "bookings", "yookassa"],
        sessionLifetime: Duration = ConsoleConfiguration.defaultSessionLifetime,
        secureCookies: Bool = ConsoleConfiguration.defaultSecureCookies, pageSize: Int = 50,
        redactor: PayloadRedactor = .standard
    ) {
        self.host = host
        self.port = port
        self.token = token
        self.readOnly = readOnly
        self.keys = keys
        self.sources = sources
        self.sessionLifetime = sessionLifetime
        self.secureCookies = secureCookies
        self.pageSize = pageSize
        self.redactor = redactor
    }
}
