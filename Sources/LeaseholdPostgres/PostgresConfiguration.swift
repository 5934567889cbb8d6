/// How to reach PostgreSQL. Every field has a default; `POSTGRES_URL` is the usual source.
///
/// The connection string goes to libpq as it is, so every form libpq accepts works, including a
/// list of servers for failover: `postgres://user@db1:5432,db2:5432/leasehold` or
/// `host=db1,db2 port=5432,5432 dbname=leasehold`. libpq tries the hosts in order and keeps the
/// first that accepts the connection and matches `target_session_attrs`, which is `read-write`
/// unless the string says otherwise (see ``targetSessionAttributes``): a standby is skipped, so
/// after a failover every new connection lands on the promoted node.
public struct PostgresConfiguration: Sendable {
    /// A libpq connection URL (`postgres://user:password@host:5432/db?sslmode=disable`, several
    /// `host:port` pairs separated by commas for failover) or a `key=value` conninfo string.
    /// Whatever it says wins over the fields below.
    public var connectionString: String
    /// Seconds to wait for a connection to open.
    public var connectTimeoutSeconds: Int
    /// Shown in `pg_stat_activity.application_name`.
    public var applicationName: String
    /// libpq's `target_session_attrs` unless the connection string sets it: `read-write` by
    /// default, since every Leasehold role writes. libpq then refuses a server in recovery (a hot
    /// standby) or with `default_transaction_read_only = on`, and with several hosts moves on to
    /// the next, so a write never lands on a read-only node. PostgreSQL 14 and later report both
    /// settings when the connection opens, so this costs no round trip; older servers get one
    /// `SHOW transaction_read_only`. `nil` leaves libpq's default (`any`).
    public var targetSessionAttributes: String?
    /// libpq parameters applied unless the connection string sets them itself:
    /// ``defaultNetworkParameters`` by default.
    public var defaultParameters: [(keyword: String, value: String)]

    /// TCP keepalives and `tcp_user_timeout`, so a connection whose peer vanished silently (a
    /// network loss, a host that died without closing its sockets) fails within about a minute
    /// instead of the kernel's ~15 minutes of retransmissions, while the heartbeat keeps the lease
    /// of an entry whose query can never finish. Idle: probes after 30 s, every 10 s, 3 unanswered
    /// ones close it (60 s). Busy: unacknowledged data for 60 s closes it.
    public static let defaultNetworkParameters: [(keyword: String, value: String)] = [
        ("keepalives", "1"), ("keepalives_idle", "30"), ("keepalives_interval", "10"), ("keepalives_count", "3"),
        ("tcp_user_timeout", "60000"),
    ]

    public init(
        connectionString: String = "postgres://postgres@127.0.0.1:5432/leasehold",
        connectTimeoutSeconds: Int = 5,
        applicationName: String = "leasehold", targetSessionAttributes: String? = "read-write",
        defaultParameters: [(keyword: String, value: String)] = PostgresConfiguration.defaultNetworkParameters
    ) {
        self.connectionString = connectionString
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.applicationName = applicationName
        self.targetSessionAttributes = targetSessionAttributes
        self.defaultParameters = defaultParameters
    }

    /// The keyword/value arrays for `PQconnectdbParams` (with `expand_dbname`): the defaults first,
    /// then the connection string as `dbname`. libpq uses the last value given for a keyword, and
    /// the parameters of an expanded `dbname` (URL or `key=value` conninfo) count as given at its
    /// position, so whatever the connection string sets wins over every default.
    ///
    /// `connect_timeout` applies to each host of a multi-host string in turn, so the worst case is
    /// that many times the timeout; a host that refuses the connection is passed over at once.
    var connectParameters: (keywords: [String], values: [String]) {
        let defaults: [(keyword: String, value: String)] =
            [
                ("connect_timeout", String(connectTimeoutSeconds)), ("application_name", applicationName),
                ("client_encoding", "UTF8"),
            ] + (targetSessionAttributes.map { [("target_session_attrs", $0)] } ?? []) + defaultParameters
        return (defaults.map(\.keyword) + ["dbname"], defaults.map(\.value) + [connectionString])
    }

    /// The connection string with any password replaced by `***`, for logs and errors.
    public var redactedConnectionString: String { Self.redact(connectionString) }

    static func redact(_ text: String) -> String {
        if let schemeEnd = text.range(of: "://")?.upperBound { return redactURL(text, schemeEnd: schemeEnd) }
        return redactConninfo(text)
    }

    /// `scheme://user:password@host/db?password=…`: the password in the user info (whose `@` is the
    /// last one before the path, so a `@` in the query is not mistaken for it) and any `password`
    /// query parameter.
    private static func redactURL(_ text: String, schemeEnd: String.Index) -> String {
        let authorityEnd = text[schemeEnd...].firstIndex { "/?#".contains($0) } ?? text.endIndex
        let authority = text[schemeEnd..<authorityEnd]
        var result = String(text[..<schemeEnd])
        if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
            result += authority[..<colon] + ":***" + authority[at...]
        } else {
            result += authority
        }
        let tail = text[authorityEnd...]
        guard let question = tail.firstIndex(of: "?") else { return result + tail }
        let fragment = tail[question...].firstIndex(of: "#") ?? tail.endIndex
        let parameters = tail[tail.index(after: question)..<fragment]
            .split(separator: "&", omittingEmptySubsequences: false)
            .map { parameter in
                parameter.split(separator: "=", maxSplits: 1).first?.lowercased() == "password"
                    ? "password=***" : String(parameter)
            }
        return result + tail[...question] + parameters.joined(separator: "&") + tail[fragment...]
    }

    /// `key = value` pairs separated by whitespace, where a value is either a run of non-blank
    /// characters or single-quoted with `\'` and `\\` escapes (libpq's conninfo grammar).
    private static func redactConninfo(_ text: String) -> String {
        let characters = Array(text)
        var output = ""
        var index = 0
        while index < characters.count {
            if characters[index].isWhitespace {
                output.append(characters[index])
                index += 1
                continue
            }
            let keywordStart = index
            while index < characters.count, !characters[index].isWhitespace, characters[index] != "=" { index += 1 }
            let keyword = String(characters[keywordStart..<index])
            output += keyword
            var equals = index
            while equals < characters.count, characters[equals].isWhitespace { equals += 1 }
            guard equals < characters.count, characters[equals] == "=" else { continue }  // not key=value: copy on
            output += String(characters[index...equals])
            index = equals + 1
            while index < characters.count, characters[index].isWhitespace {
                output.append(characters[index])
                index += 1
            }
            let valueStart = index
            if index < characters.count, characters[index] == "'" {
                index += 1
                while index < characters.count, characters[index] != "'" {
                    index += characters[index] == "\\" ? 2 : 1
                }
                index = min(index + 1, characters.count)
            } else {
                while index < characters.count, !characters[index].isWhitespace {
                    index += characters[index] == "\\" ? 2 : 1
                }
                index = min(index, characters.count)
            }
            output += keyword == "password" ? "***" : String(characters[valueStart..<index])
        }
        return output
    }
}
