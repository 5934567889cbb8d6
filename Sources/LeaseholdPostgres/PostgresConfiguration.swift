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
