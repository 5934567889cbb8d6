import LeaseholdRedis
import LeaseholdTesting
import Testing

/// `RedisScript` runs by SHA and reloads itself after `NOSCRIPT`.
///
/// `.serialized` because `SCRIPT FLUSH` is server-global: the tests here must not flush under each
/// other. Other suites' scripts reload themselves the same way, so a flush cannot break them.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .serialized)
struct RedisScriptTests {
    static func evalshaCalls(_ client: RedisClient) async throws -> Int {
        let info = try await client.send("INFO", "commandstats").string ?? ""
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_evalsha:") }),
            let calls = line.split(separator: ",").first?.split(separator: "=").last
        else { return 0 }
        return Int(calls) ?? 0
    }

    static func scriptExists(_ sha: String, _ client: RedisClient) async throws -> Bool {
        try await client.send("SCRIPT", "EXISTS", sha) == .array([.integer(1)])
    }

    @Test("a script gets KEYS and ARGV byte for byte, and is run by SHA once loaded")
    func runsBySHA() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let script = RedisScript(
                "return {KEYS[1], ARGV[1], string.len(ARGV[1]), redis.call('INCR', KEYS[1] .. ':n')}")
            #expect(script.sha == nil)
            let key = prefix + "k"
            let argument = Array("🎉 Вы\u{0}успешно".utf8)
            let first = try await client.evaluate(script, keys: [key], arguments: [argument])
            #expect(
                first
                    == .array([
                        .bulk(Array(key.utf8)), .bulk(argument), .integer(Int64(argument.count)), .integer(1),
                    ]))
            let sha = try #require(script.sha)
            #expect(sha.count == 40)
            #expect(try await Self.scriptExists(sha, client))

            let callsBefore = try await Self.evalshaCalls(client)
            let second = try await client.evaluate(script, keys: [key], arguments: ["x"])
            #expect(second.array?.last == .integer(2))
            #expect(script.sha == sha)
            #expect(try await Self.evalshaCalls(client) > callsBefore)
        }
    }

    @Test("after SCRIPT FLUSH the script reloads itself (NOSCRIPT fallback)")
    func survivesScriptFlush() async throws {
        try await RedisFixture.withClient(size: 2) { client, prefix in
            let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
            let key = prefix + "counter"
            #expect(try await client.evaluate(script, keys: [key], arguments: [5]) == .integer(5))
            let sha = try #require(script.sha)

            #expect(try await client.send("SCRIPT", "FLUSH") == .status("OK"))
            #expect(try await Self.scriptExists(sha, client) == false)

            #expect(try await client.evaluate(script, keys: [key], arguments: [7]) == .integer(12))
            #expect(script.sha == sha)
            #expect(try await Self.scriptExists(sha, client))
        }
    }

    @Test("a script shared by concurrent callers loads once and runs for all of them")
    func sharedScript() async throws {
        try await RedisFixture.withClient(size: 8) { client, prefix in
            let script = RedisScript("return redis.call('INCR', KEYS[1])")
            let key = prefix + "shared"
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        for _ in 0..<25 { try await client.evaluate(script, keys: [key]) }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await client.send("GET", key).int == 400)
        }
    }

    @Test("errors raised by a script are thrown with their code")
    func scriptErrors() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let custom = RedisScript("return redis.error_reply('MYCODE something went wrong')")
            let error = try await #require(throws: RedisError.self) { try await client.evaluate(custom) }
            #expect(error.code.rawValue == "MYCODE")
            #expect(error.source == .server)
            #expect(error.command == "EVALSHA")

            let key = prefix + "string"
            try await client.send("SET", key, "v")
            let wrongType = RedisScript("return redis.call('LPUSH', KEYS[1], 'x')")
            let propagated = try await #require(throws: RedisError.self) {
                try await client.evaluate(wrongType, keys: [key])
            }
            #expect(propagated.code == .wrongType)

            let syntax = RedisScript("this is not lua")
            let loadError = try await #require(throws: RedisError.self) { try await client.evaluate(syntax) }
            #expect(loadError.code == .err)
            #expect(syntax.sha == nil)
        }
    }

    @Test("an error inside a script's array reply stays in place as .error")
    func nestedError() async throws {
        try await RedisFixture.withClient(size: 1) { client, _ in
            let script = RedisScript("return {1, redis.error_reply('WRONGTYPE nested'), 'after'}")
            let reply = try await client.evaluate(script)
            let elements = try #require(reply.array)
            #expect(elements.count == 3)
            #expect(elements.first == .integer(1))
            #expect(elements.last == .bulk(Array("after".utf8)))
            guard case .error(let nested) = elements[1] else {
                Issue.record("expected a nested error, got \(elements[1])")
                return
            }
            #expect(nested.code == .wrongType)
        }
    }
}
