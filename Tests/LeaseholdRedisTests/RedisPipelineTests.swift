import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Pipelines: one round trip, replies in order, error replies in place.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable))
struct RedisPipelineTests {
    @Test("1,000 INCRs on one key come back as 1...1000, in order")
    func thousandIncrements() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let key = prefix + "counter"
            let replies = try await client.pipeline(Array(repeating: RedisCommand("INCR", key), count: 1_000))
            #expect(replies.count == 1_000)
            #expect(replies == (1...1_000).map { .integer(Int64($0)) })
            #expect(try await client.send("GET", key).int == 1_000)
        }
    }

    @Test("1,000 SET/GET pairs with distinct binary values come back paired")
    func thousandPairs() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let values = (0..<500).map { index in Array("value \(index) Вы 🎉".utf8) + [0, UInt8(index % 256)] }
            let commands = values.enumerated().flatMap { index, value in
                [RedisCommand("SET", prefix + "k\(index)", value), RedisCommand("GET", prefix + "k\(index)")]
            }
            let replies = try await client.pipeline(commands)
            #expect(replies.count == 1_000)
            for (index, value) in values.enumerated() {
                #expect(replies[2 * index] == .status("OK"))
                #expect(replies[2 * index + 1] == .bulk(value))
            }
        }
    }

    @Test("error replies stay in place, with their code and command, and do not stop the pipeline")
    func errorsInPlace() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let key = prefix + "string"
            let replies = try await client.pipeline([
                RedisCommand("SET", key, "not a list"),
                RedisCommand("LPUSH", key, "x"),
                RedisCommand("GET", key),
                RedisCommand("INCR", key),
                RedisCommand("XREADGROUP", "GROUP", "missing-group", "c", "STREAMS", prefix + "nostream", ">"),
                RedisCommand("NOT-A-COMMAND"),
                RedisCommand("ECHO", "still in order"),
            ])
            #expect(replies.count == 7)
            #expect(replies[0] == .status("OK"))
            guard case .error(let wrongType) = replies[1] else {
                Issue.record("expected WRONGTYPE in place, got \(replies[1])")
                return
            }
            #expect(wrongType.code == .wrongType)
            #expect(wrongType.source == .server)
            #expect(wrongType.command == "LPUSH")
            #expect(replies[2] == .bulk(Array("not a list".utf8)))
            if case .error(let notInteger) = replies[3] {
                #expect(notInteger.code == .err)
                #expect(notInteger.command == "INCR")
            } else {
                Issue.record("expected ERR in place, got \(replies[3])")
            }
            if case .error(let noGroup) = replies[4] {
                #expect(noGroup.code == .noGroup)
            } else {
                Issue.record("expected NOGROUP in place, got \(replies[4])")
            }
            if case .error(let unknown) = replies[5] {
                #expect(unknown.code == .err)
            } else {
                Issue.record("expected ERR for an unknown command, got \(replies[5])")
            }
            #expect(replies[6] == .bulk(Array("still in order".utf8)))
            // The connection is still in step: the next reply is this command's.
            #expect(try await client.send("ECHO", "next").string == "next")
        }
    }

    @Test("an empty pipeline sends nothing and returns nothing")
    func empty() async throws {
        try await RedisFixture.withClient(size: 1) { client, _ in
            let replies = try await client.pipeline([])
            #expect(replies.isEmpty)
            let pong = try await client.send("PING")
            #expect(pong == .status("PONG"))
        }
    }

    @Test("MULTI/EXEC through a pipeline returns the transaction's replies as one array")
    func multiExec() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let key = prefix + "tx"
            let replies = try await client.pipeline([
                RedisCommand("MULTI"),
                RedisCommand("INCR", key),
                RedisCommand("INCRBY", key, 41),
                RedisCommand("EXEC"),
            ])
            #expect(
                replies == [.status("OK"), .status("QUEUED"), .status("QUEUED"), .array([.integer(1), .integer(42)])])
        }
    }
}
