import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Blocking reads end with `.null` at the server's block time, and a client-side timeout fails
/// the call promptly and replaces the connection.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct RedisTimeoutTests {
    @Test("XREADGROUP … BLOCK 200 with a 2 s timeout returns .null after about 200 ms")
    func blockingReadTimesOutOnServer() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let stream = prefix + "stream"
            try await client.send("XGROUP", "CREATE", stream, "workers", "$", "MKSTREAM")
            let clock = ContinuousClock()
            let start = clock.now
            let reply = try await client.send(
                RedisCommand("XREADGROUP", "GROUP", "workers", "w1", "COUNT", 1, "BLOCK", 200, "STREAMS", stream, ">"),
                timeout: .seconds(2))
            let elapsed = clock.now - start
            // `.null` is the server ending the block; the client's 2 s timeout would have thrown
            // instead. No upper bound on the time: on a loaded machine the thread hand-offs alone
            // can take longer than the block, and the reply already tells which side ended it.
            #expect(reply == .null)
            #expect(reply.isNull)
            #expect(elapsed >= .milliseconds(150))

            // With an entry waiting, the same call returns it.
            let id = try await client.send("XADD", stream, "*", "slot", "134")
            let delivered = try await client.send(
                RedisCommand("XREADGROUP", "GROUP", "workers", "w1", "COUNT", 1, "BLOCK", 200, "STREAMS", stream, ">"),
                timeout: .seconds(2))
            #expect(
                delivered
                    == .array([
                        .array([
                            .bulk(Array(stream.utf8)),
                            .array([.array([id, .array([.bulk(Array("slot".utf8)), .bulk(Array("134".utf8))])])]),
                        ])
                    ]))
        }
    }

    @Test("BLPOP key 5 with a 300 ms timeout throws a connection timeout promptly; the next call works")
    func clientTimeout() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let before = try #require(RedisFixture.clientInfo("id", in: try await client.send("CLIENT", "INFO")))
            let clock = ContinuousClock()
            let start = clock.now
            let error = try await #require(throws: RedisError.self) {
                try await client.send(RedisCommand("BLPOP", prefix + "empty", 5), timeout: .milliseconds(300))
            }
            let elapsed = clock.now - start
            #expect(error.source == .connection)
            #expect(error.code == .timeout)
            #expect(error.command == "BLPOP")
            #expect(error.isRetryable)
            #expect(elapsed >= .milliseconds(250))
            // Before the server's 5 s block would have ended it (that would be `.null`, not a throw).
            #expect(elapsed < .seconds(5))

            // The timed-out context was discarded: the next call gets a fresh connection, in step.
            #expect(try await client.send("ECHO", "after timeout").string == "after timeout")
            let after = try #require(RedisFixture.clientInfo("id", in: try await client.send("CLIENT", "INFO")))
            #expect(after != before)
        }
    }

    @Test("the configured commandTimeout bounds calls without their own timeout, and resets after one")
    func configuredTimeout() async throws {
        // 1 s rather than less: a loaded machine must not time out the ordinary calls around the
        // blocking ones.
        try await RedisFixture.withClient(size: 1, configure: { $0.commandTimeout = .seconds(1) }) { client, prefix in
            let clock = ContinuousClock()
            let start = clock.now
            let error = try await #require(throws: RedisError.self) {
                try await client.send("BLPOP", prefix + "empty", 5)
            }
            #expect(error.code == .timeout)
            #expect(clock.now - start < .seconds(5))

            // A per-call timeout longer than the block applies to that call only...
            let reply = try await client.send(RedisCommand("BLPOP", prefix + "empty", 2), timeout: .seconds(4))
            #expect(reply == .null)
            // ...and the configured one is back for the next call.
            let again = try await #require(throws: RedisError.self) {
                try await client.send("BLPOP", prefix + "empty", 5)
            }
            #expect(again.code == .timeout)
        }
    }

    @Test("a pipeline that outlives the command timeout throws and leaves the client usable")
    func pipelineTimeout() async throws {
        try await RedisFixture.withClient(size: 1, configure: { $0.commandTimeout = .seconds(1) }) { client, prefix in
            let error = try await #require(throws: RedisError.self) {
                try await client.pipeline([RedisCommand("ECHO", "a"), RedisCommand("BLPOP", prefix + "empty", 5)])
            }
            #expect(error.code == .timeout)
            #expect(error.command == "BLPOP")
            #expect(try await client.pipeline([RedisCommand("ECHO", "b")]) == [.bulk(Array("b".utf8))])
        }
    }
}
