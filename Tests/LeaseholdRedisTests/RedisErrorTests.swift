import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Server error replies are thrown as `RedisError`s with the code Redis put first.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable))
struct RedisErrorTests {
    @Test("XREADGROUP on a missing group is NOGROUP")
    func noGroup() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let stream = prefix + "stream"
            try await client.send("XADD", stream, "*", "k", "v")
            let error = try await #require(throws: RedisError.self) {
                try await client.send("XREADGROUP", "GROUP", "nobody", "c", "COUNT", 1, "STREAMS", stream, ">")
            }
            #expect(error.code == .noGroup)
            #expect(error.source == .server)
            #expect(error.command == "XREADGROUP")
            #expect(error.isRetryable == false)
            #expect(error.description.hasPrefix("Redis XREADGROUP: NOGROUP"))

            let missingStream = try await #require(throws: RedisError.self) {
                try await client.send("XREADGROUP", "GROUP", "nobody", "c", "STREAMS", prefix + "nostream", ">")
            }
            #expect(missingStream.code == .noGroup)
        }
    }

    @Test("XGROUP CREATE twice is BUSYGROUP")
    func busyGroup() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let stream = prefix + "stream"
            #expect(try await client.send("XGROUP", "CREATE", stream, "workers", "$", "MKSTREAM") == .status("OK"))
            let error = try await #require(throws: RedisError.self) {
                try await client.send("XGROUP", "CREATE", stream, "workers", "$", "MKSTREAM")
            }
            #expect(error.code == .busyGroup)
            #expect(error.source == .server)
            #expect(error.command == "XGROUP")
        }
    }

    @Test("a list command on a string is WRONGTYPE")
    func wrongType() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let key = prefix + "string"
            try await client.send("SET", key, "v")
            let error = try await #require(throws: RedisError.self) { try await client.send("LPUSH", key, "x") }
            #expect(error.code == .wrongType)
            #expect(error.source == .server)
            #expect(error.message.hasPrefix("WRONGTYPE"))
        }
    }

    @Test("EVALSHA of an unknown SHA is NOSCRIPT")
    func noScript() async throws {
        try await RedisFixture.withClient(size: 1) { client, _ in
            let unknown = String(repeating: "0", count: 39) + "1"
            let error = try await #require(throws: RedisError.self) { try await client.send("EVALSHA", unknown, 0) }
            #expect(error.code == .noScript)
            #expect(error.source == .server)
        }
    }

    @Test("generic errors are ERR, and the connection stays usable after any error reply")
    func genericError() async throws {
        try await RedisFixture.withClient(size: 1) { client, _ in
            let before = RedisFixture.clientInfo("id", in: try await client.send("CLIENT", "INFO"))
            let unknown = try await #require(throws: RedisError.self) { try await client.send("NOT-A-COMMAND", "x") }
            #expect(unknown.code == .err)
            let arity = try await #require(throws: RedisError.self) { try await client.send("GET") }
            #expect(arity.code == .err)
            let after = RedisFixture.clientInfo("id", in: try await client.send("CLIENT", "INFO"))
            #expect(before != nil)
            #expect(after == before)  // the same connection: error replies do not cost it
        }
    }

    @Test("the server closing the connection while it sits in the pool costs no call")
    func killedWhileIdle() async throws {
        try await RedisFixture.withClient(size: 1) { client, _ in
            try await RedisFixture.withClient(size: 1) { killer, _ in
                let id = try #require(RedisFixture.clientInfo("id", in: try await client.send("CLIENT", "INFO")))
                #expect(try await killer.send("CLIENT", "KILL", "ID", id) == .integer(1))
                // The pool notices the hung-up socket before lending the connection and reconnects.
                let reply = try await client.send("CLIENT", "INFO")
                let newID = try #require(RedisFixture.clientInfo("id", in: reply))
                #expect(newID != id)
            }
        }
    }
}

/// Parsing error replies into codes (no server needed).
struct RedisErrorParsingTests {
    @Test(
        "the first word of an error reply is its code when it is upper case",
        arguments: [
            ("NOGROUP No such key 'x' or consumer group 'g'", "NOGROUP"),
            ("BUSYGROUP Consumer Group name already exists", "BUSYGROUP"),
            ("WRONGTYPE Operation against a key holding the wrong kind of value", "WRONGTYPE"),
            ("NOSCRIPT No matching script. Please use EVAL.", "NOSCRIPT"),
            ("ERR unknown command 'x'", "ERR"),
            ("LOADING Redis is loading the dataset in memory", "LOADING"),
            ("MY_CODE custom script error", "MY_CODE"),
            ("lowercase message without code", "ERR"),
            ("", "ERR"),
        ])
    func codes(_ reply: String, _ code: String) {
        let error = RedisError(reply: reply, command: "CMD")
        #expect(error.code.rawValue == code)
        #expect(error.source == .server)
        #expect(error.message == reply)
    }

    @Test(
        "retryable errors",
        arguments: [
            (RedisError(reply: "LOADING x"), true), (RedisError(reply: "BUSY x"), true),
            (RedisError(reply: "READONLY x"), true), (RedisError(reply: "TRYAGAIN x"), true),
            (RedisError(reply: "NOGROUP x"), false), (RedisError(reply: "WRONGTYPE x"), false),
            (RedisError(source: .connection, code: .timeout, message: "t"), true),
            (RedisError(source: .client, code: .invalidInput, message: "bad"), false),
        ])
    func retryable(_ error: RedisError, _ retryable: Bool) {
        #expect(error.isRetryable == retryable)
    }
}
