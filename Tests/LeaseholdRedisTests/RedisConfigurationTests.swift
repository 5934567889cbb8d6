import LeaseholdRedis
import LeaseholdTesting
import Testing

extension UnitTests {
    /// `RedisConfiguration(url:)` and `redactedURL` (no server needed).
    struct RedisConfigurationTests {
        static let accepted: [(String, RedisConfiguration)] = [
            ("redis://127.0.0.1:6379/0", RedisConfiguration(host: "127.0.0.1", port: 6379, database: 0)),
            ("redis://cache.internal", RedisConfiguration(host: "cache.internal")),
            ("redis://cache.internal:6380", RedisConfiguration(host: "cache.internal", port: 6380)),
            ("redis://cache.internal/5", RedisConfiguration(host: "cache.internal", database: 5)),
            ("redis://cache.internal:6380/", RedisConfiguration(host: "cache.internal", port: 6380)),
            (
                "redis://:s3cret@cache.internal:6380/2",
                RedisConfiguration(host: "cache.internal", port: 6380, password: "s3cret", database: 2)
            ),
            (
                "redis://app:s3cret@cache.internal/3",
                RedisConfiguration(host: "cache.internal", username: "app", password: "s3cret", database: 3)
            ),
            ("redis://app@cache.internal", RedisConfiguration(host: "cache.internal", username: "app")),
            (
                "redis://:p%40ss%3Aw%2Frd@cache.internal",
                RedisConfiguration(host: "cache.internal", password: "p@ss:w/rd")
            ),
            ("redis://:100%2541@cache.internal", RedisConfiguration(host: "cache.internal", password: "100%41")),
            ("REDIS://cache.internal:7000/1", RedisConfiguration(host: "cache.internal", port: 7000, database: 1)),
            ("redis://[::1]:6380/1", RedisConfiguration(host: "::1", port: 6380, database: 1)),
            ("redis://", RedisConfiguration()),
        ]

        @Test("redis:// URLs set host, port, user, password and database", arguments: accepted)
        func parses(_ url: String, _ expected: RedisConfiguration) throws {
            let configuration = try RedisConfiguration(url: url)
            #expect(configuration == expected)
        }

        static let refused: [(url: String, reason: String)] = [
            ("rediss://:s3cret@cache.internal:6380/0", "TLS"),
            ("garbage", "not a URL"),
            ("", "not a URL"),
            ("http://cache.internal", "scheme"),
            ("redis://cache.internal:99999", "port"),
            ("redis://cache.internal:0", "port"),
            ("redis://cache.internal/abc", "database"),
            ("redis://cache.internal/-1", "database"),
            ("redis://cache.internal:port/0", "not a URL"),
        ]

        @Test("unsupported or malformed URLs are refused with a clear client error", arguments: refused)
        func refuses(_ url: String, _ reason: String) {
            let error = #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
            #expect(error?.source == .client)
            #expect(error?.code == .invalidInput)
            #expect(error?.message.hasPrefix("invalid REDIS_URL") == true)
            #expect(error?.message.contains(reason) == true, "\(error?.message ?? "")")
            #expect(error?.description.contains("s3cret") == false)
            #expect(error?.isRetryable == false)
        }

        @Test(
            "redactedURL hides the password and keeps the rest",
            arguments: [
                ("redis://:s3cret@cache.internal:6380/2", "redis://:***@cache.internal:6380/2"),
                ("redis://app:s3cret@cache.internal/3", "redis://app:***@cache.internal:6379/3"),
                ("redis://app@cache.internal", "redis://app@cache.internal:6379/0"),
                ("redis://cache.internal", "redis://cache.internal:6379/0"),
                ("redis://:s3cret@[::1]:6380/1", "redis://:***@[::1]:6380/1"),
            ])
        func redaction(_ url: String, _ redacted: String) throws {
            let configuration = try RedisConfiguration(url: url)
            #expect(configuration.redactedURL == redacted)
            #expect(configuration.redactedURL.contains("s3cret") == false)
        }

        @Test("a refused connection reports the redacted URL, never the password")
        func connectionErrorIsRedacted() async throws {
            // Port 1 on loopback: nothing listens there, so the connection is refused at once.
            let configuration = RedisConfiguration(
                host: "127.0.0.1", port: 1, password: "s3cret", connectTimeout: .seconds(2))
            let client = RedisClient(configuration: configuration)
            defer { client.close() }
            let error = try await #require(throws: RedisError.self) { try await client.send("PING") }
            #expect(error.source == .connection)
            #expect(error.code == .connect)
            #expect(!error.outcomeUnknown, "nothing was sent")
            #expect(error.isRetryable)
            #expect(error.description.contains("s3cret") == false)
            #expect(error.description.contains("redis://:***@127.0.0.1:1/0"))
        }
    }
}

/// Authentication and database selection against the live server.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable))
struct RedisConnectionSetupTests {
    @Test("the database from the configuration is SELECTed on every new connection", arguments: [3, 7])
    func selectsDatabase(_ database: Int) async throws {
        try await RedisFixture.withClient(size: 2) { defaultClient, prefix in
            try await RedisFixture.withClient(size: 2, configure: { $0.database = database }) { client, _ in
                let info = try await client.send("CLIENT", "INFO")
                #expect(RedisFixture.clientInfo("db", in: info) == String(database))
                let key = prefix + "db\(database)"
                try await client.send("SET", key, "in \(database)")
                #expect(try await client.send("GET", key).string == "in \(database)")
                #expect(try await defaultClient.send("EXISTS", key) == .integer(0))
                try await client.send("DEL", key)
            }
        }
    }

    /// The connection's set-up failed, not the caller's command (nothing of it was sent): the code
    /// is ``RedisError/Code/connect``, the server's reply (its `WRONGPASS` code first) the message.
    @Test("a wrong user name and password fail with the server's code and without the password")
    func wrongPassword() async throws {
        var configuration = try IntegrationEnvironment.redisConfiguration()
        configuration.username = "lh-nobody"
        configuration.password = "s3cret-password"
        let client = RedisClient(configuration: configuration, size: 1)
        let error = try await #require(throws: RedisError.self) { try await client.send("PING") }
        client.close()
        #expect(error.source == .server)
        #expect(error.code == .connect)
        #expect(error.message.hasPrefix(RedisError.Code.wrongPass.rawValue), "\(error)")
        #expect(!error.outcomeUnknown, "nothing of the caller's was sent")
        #expect(error.description.contains("s3cret-password") == false)
    }
}
