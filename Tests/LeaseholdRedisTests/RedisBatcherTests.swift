import LeaseholdOps
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Concurrent callers sharing round trips: every caller gets its own reply, errors stay with
/// their caller, a failed pipeline never leaves callers hanging.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable))
struct RedisBatcherTests {
    @Test("2,000 concurrent callers each get their own reply, in far fewer round trips")
    func everyCallerGetsItsOwnReply() async throws {
        try await RedisFixture.withClient(size: 2) { client, prefix in
            let batcher = RedisBatcher(client: client)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<2_000 {
                    group.addTask {
                        let key = prefix + "k\(index)"
                        let value = Array("value \(index) Вы".utf8) + [0, UInt8(index % 256)]
                        let set = try await batcher.send(RedisCommand("SET", key, value))
                        let get = try await batcher.send(RedisCommand("GET", key))
                        let total = try await batcher.send(RedisCommand("INCR", prefix + "total"))
                        #expect(set == .status("OK"))
                        #expect(get == .bulk(value))
                        #expect((total.int ?? 0) > 0)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await client.send("GET", prefix + "total").int == 2_000)
            let statistics = batcher.statistics
            #expect(statistics.commands == 6_000)
            #expect(statistics.pipelines < statistics.commands / 4, "shared round trips: \(statistics)")
        }
    }

    /// One pipeline at a time carrying two commands: the line of waiting callers grows into the
    /// thousands and is served from its head (and compacted) while it never empties.
    @Test("a long line of waiting callers is served in order, each with its own reply")
    func aLongLineIsServed() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let batcher = RedisBatcher(client: client, flushers: 1, maxBatch: 2)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<4_000 {
                    group.addTask {
                        let reply = try await batcher.send(RedisCommand("ECHO", "\(prefix)\(index)"))
                        #expect(reply.string == "\(prefix)\(index)")
                    }
                }
                try await group.waitForAll()
            }
            #expect(batcher.statistics.commands == 4_000)
            #expect(batcher.statistics.pipelines >= 2_000)
        }
    }

    @Test("an error reply is thrown to its own caller only")
    func errorsStayWithTheirCaller() async throws {
        try await RedisFixture.withClient(size: 1) { client, prefix in
            let batcher = RedisBatcher(client: client, maxBatch: 64)
            try await client.send("SET", prefix + "text", "not a number")
            let results = await withTaskGroup(of: (Int, Result<RedisValue, any Error>).self) { group in
                for index in 0..<200 {
                    group.addTask {
                        let key = index % 10 == 0 ? prefix + "text" : prefix + "n\(index)"
                        do {
                            return (index, .success(try await batcher.send(RedisCommand("INCR", key))))
                        } catch {
                            return (index, .failure(error))
                        }
                    }
                }
                var results: [Int: Result<RedisValue, any Error>] = [:]
                for await (index, result) in group { results[index] = result }
                return results
            }
            for (index, result) in results {
                switch result {
                case .success(let value):
                    #expect(index % 10 != 0, "INCR of a string must fail")
                    #expect(value == .integer(1))
                case .failure(let error):
                    #expect(index % 10 == 0, "\(index): \(error)")
                    #expect((error as? RedisError)?.code == .err)
                }
            }
        }
    }

    @Test("a script runs through the batcher, and again after SCRIPT FLUSH")
    func scriptsReloadAfterAFlush() async throws {
        try await RedisFixture.withClient(size: 2) { client, prefix in
            let batcher = RedisBatcher(client: client)
            let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
            #expect(try await batcher.evaluate(script, keys: [prefix + "s"], arguments: [2]).int == 2)
            #expect(try await batcher.evaluate(script, keys: [prefix + "s"], arguments: [3]).int == 5)
            try await client.send("SCRIPT", "FLUSH")
            #expect(try await batcher.evaluate(script, keys: [prefix + "s"], arguments: [5]).int == 10)
        }
    }

    @Test("callers of a pipeline that cannot be sent all get the error, and none is left waiting")
    func ioErrorsReachEveryCaller() async throws {
        var configuration = try IntegrationEnvironment.redisConfiguration()
        configuration.port = try freeLoopbackPort()
        let client = RedisClient(configuration: configuration, size: 2)
        let batcher = RedisBatcher(client: client)
        for _ in 0..<2 {
            let failures = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<100 {
                    group.addTask { (try? await batcher.send(RedisCommand("PING"))) == nil }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(failures == 100)
        }
        await client.close()
    }
}
