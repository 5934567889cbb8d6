import Foundation
import LeaseholdReactor
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// The non-blocking client on a reactor, against the real server: replies, pipelining of
/// concurrent callers, scripts, connection set-up, timeouts, lost connections and cancellation.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct RedisClientTests {
    /// Runs `body` on a new reactor with a new client and a unique key prefix, then deletes the
    /// prefix's keys, closes the client and shuts the reactor down.
    static func withClient<T: Sendable>(
        size: Int = 1, configure: (inout RedisConfiguration) -> Void = { _ in },
        _ body: @escaping (RedisClient, String) async throws -> T
    ) async throws -> T {
        var configuration = try IntegrationEnvironment.redisConfiguration()
        configure(&configuration)
        let reactor = Reactor(label: "test.redis-reactor")
        defer { reactor.shutDown() }
        let client = RedisClient(configuration: configuration, reactor: reactor, size: size)
        let prefix = IntegrationEnvironment.uniqueName("lh_test") + ":"
        let result = await withTaskExecutorPreference(reactor) {
            let result = await RedisFixture.outcome { try await body(client, prefix) }
            client.close()
            return result
        }
        try await RedisFixture.deleteKeys(under: prefix)
        return try result.get()
    }

    @Test(
        "replies of every type come back as with the blocking client; an error reply is thrown and the connection stays"
    )
    func replies() async throws {
        try await Self.withClient { client, prefix in
            let key = prefix + "k"
            let bytes: [UInt8] = [0, 1, 2, 255, 0x0d, 0x0a]
            #expect(try await client.send("SET", key, bytes) == .status("OK"))
            #expect(try await client.send("GET", key) == .bulk(bytes))
            #expect(try await client.send("GET", prefix + "missing") == .null)
            #expect(try await client.send("RPUSH", prefix + "list", "a", "b") == .integer(2))
            #expect(try await client.send("LRANGE", prefix + "list", 0, -1) == .array([.bulk([97]), .bulk([98])]))
            let error = try await #require(throws: RedisError.self) { try await client.send("INCR", prefix + "list") }
            #expect(error.source == .server)
            #expect(error.code == .wrongType)
            #expect(error.command == "INCR")
            #expect(!error.outcomeUnknown)
            #expect(try await client.send("PING") == .status("PONG"))
        }
    }

    @Test("500 concurrent callers on one connection each get their own reply, on the reactor's thread")
    func concurrentCallersSharePipelines() async throws {
        try await Self.withClient { client, prefix in
            let reactor = client.reactor
            let results = try await withThrowingTaskGroup(of: (Int, RedisValue, RedisValue, Bool).self) { group in
                for index in 0..<500 {
                    group.addTask {
                        let echoed = try await client.send("ECHO", "caller-\(index)")
                        let counted = try await client.send("INCRBY", prefix + "sum", index)
                        return (index, echoed, counted, reactor.isCurrent)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count == 500)
            for (index, echoed, counted, onReactor) in results {
                #expect(echoed == .bulk(Array("caller-\(index)".utf8)))
                #expect(counted.int != nil)
                #expect(onReactor)
            }
            #expect(try await client.send("GET", prefix + "sum").int == Int64((0..<500).reduce(0, +)))
        }
    }

    @Test("a pipeline's commands go back to back, its replies in order with error replies in place")
    func pipelineIsContiguous() async throws {
        try await Self.withClient { client, prefix in
            let counter = prefix + "counter"
            try await client.send("SET", prefix + "text", "x")
            let pairs = try await withThrowingTaskGroup(of: [RedisValue].self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        try await client.pipeline([
                            RedisCommand("INCR", counter), RedisCommand("INCR", prefix + "text"),
                            RedisCommand("INCR", counter),
                        ])
                    }
                    group.addTask { [try await client.send("INCR", counter)] }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let pipelines = pairs.filter { $0.count == 3 }
            #expect(pipelines.count == 50)
            for replies in pipelines {
                // No other caller's INCR came between the pipeline's two.
                let first = try #require(replies[0].int)
                #expect(replies[2].int == first + 1)
                guard case .error(let error) = replies[1] else {
                    Issue.record("expected an error reply in place, got \(replies[1])")
                    continue
                }
                #expect(error.command == "INCR")
            }
            #expect(try await client.send("GET", counter).int == 150)
            #expect(try await client.pipeline([]) == [])
        }
    }

    @Test("the configured database is selected on connect")
    func selectsTheDatabase() async throws {
        try await Self.withClient(configure: { $0.database = 3 }) { client, _ in
            let info = try await client.send("CLIENT", "INFO")
            #expect(RedisFixture.clientInfo("db", in: info) == "3")
        }
    }

    @Test("AUTH that the server refuses fails the connect with code CONNECT, naming no password")
    func refusedAuth() async throws {
        try await Self.withClient(configure: { $0.password = "not-the-password" }) { client, _ in
            let error = try await #require(throws: RedisError.self) { try await client.send("PING") }
            #expect(error.code == .connect)
            #expect(error.command == "AUTH")
            #expect(!error.outcomeUnknown)
            #expect(!"\(error)".contains("not-the-password"))
        }
    }

    @Test("nothing listening: the connect fails at once with code CONNECT")
    func refusedConnection() async throws {
        let port = try Self.closedPort()
        try await Self.withClient(configure: { $0.port = port }) { client, _ in
            let error = try await #require(throws: RedisError.self) { try await client.send("PING") }
            #expect(error.code == .connect)
            #expect(!error.outcomeUnknown)
            #expect(error.message.contains("127.0.0.1:\(port)") || error.message.contains("\(port)"))
        }
    }

    @Test("a server that never completes the handshake fails the connect after connectTimeout")
    func connectTimeout() async throws {
        // A listening socket whose backlog is full: further SYNs are dropped, so connect() hangs.
        let listener = try SilentListener()
        defer { listener.close() }
        try await Self.withClient(
            configure: {
                $0.port = listener.port
                $0.connectTimeout = .milliseconds(300)
            }
        ) { client, _ in
            let clock = ContinuousClock()
            let start = clock.now
            let error = try await #require(throws: RedisError.self) { try await client.send("PING") }
            let elapsed = clock.now - start
            #expect(error.code == .connect)
            #expect(elapsed < .seconds(3))
            if listener.handshakesHang {
                #expect(error.message.contains("timeout"))
                #expect(elapsed >= .milliseconds(250))
            }
        }
    }

    @Test("a command past its timeout fails with TIMEOUT, the commands behind it with IO; the next call reconnects")
    func commandTimeout() async throws {
        try await Self.withClient { client, prefix in
            let before = try await client.send("CLIENT", "ID")
            let clock = ContinuousClock()
            let start = clock.now
            async let blocked = RedisFixture.outcome {
                try await client.send(RedisCommand("BLPOP", prefix + "empty", 5), timeout: .milliseconds(300))
            }
            async let behind = RedisFixture.outcome { try await client.send("PING") }
            let (first, second) = await (blocked, behind)
            let elapsed = clock.now - start
            let timeout = try #require(throws: RedisError.self) { try first.get() }
            #expect(timeout.code == .timeout)
            #expect(timeout.command == "BLPOP")
            #expect(timeout.outcomeUnknown)
            #expect(elapsed >= .milliseconds(250))
            #expect(elapsed < .seconds(4))
            let lost = try #require(throws: RedisError.self) { try second.get() }
            #expect(lost.source == .connection)
            #expect(lost.outcomeUnknown)
            let after = try await client.send("CLIENT", "ID")
            #expect(after != before)
        }
    }

    @Test("a connection killed while idle is replaced before the next command, which succeeds")
    func killedWhileIdle() async throws {
        try await Self.withClient { client, _ in
            let id = try #require(try await client.send("CLIENT", "ID").int)
            let killer = try IntegrationEnvironment.redisClient(size: 1)
            #expect(try await killer.send("CLIENT", "KILL", "ID", id) == .integer(1))
            killer.close()
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await client.send("PING") == .status("PONG"))
            #expect(try await client.send("CLIENT", "ID").int != id)
        }
    }

    @Test("a connection killed mid-command fails that command as outcome unknown; the next call reconnects")
    func killedInFlight() async throws {
        try await Self.withClient { client, prefix in
            let id = try #require(try await client.send("CLIENT", "ID").int)
            async let blocked = RedisFixture.outcome {
                try await client.send(RedisCommand("BLPOP", prefix + "empty", 5), timeout: .seconds(10))
            }
            try await Task.sleep(for: .milliseconds(200))
            let killer = try IntegrationEnvironment.redisClient(size: 1)
            #expect(try await killer.send("CLIENT", "KILL", "ID", id) == .integer(1))
            killer.close()
            let result = await blocked
            let error = try #require(throws: RedisError.self) { try result.get() }
            #expect(error.source == .connection)
            #expect(error.code == .io)
            #expect(error.outcomeUnknown)
            #expect(try await client.send("PING") == .status("PONG"))
        }
    }

    @Test("a cancelled task sends nothing; a task cancelled after queuing still gets its reply")
    func cancellation() async throws {
        try await Self.withClient { client, prefix in
            let reactor = client.reactor
            let never = Task(executorPreference: reactor) {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await client.send("SET", prefix + "never", "1")
            }
            await #expect(throws: CancellationError.self) { try await never.value }
            #expect(try await client.send("EXISTS", prefix + "never") == .integer(0))

            let queued = Task(executorPreference: reactor) {
                try await client.send(RedisCommand("BLPOP", prefix + "empty", "0.3"), timeout: .seconds(5))
            }
            try await Task.sleep(for: .milliseconds(100))
            queued.cancel()
            #expect(try await queued.value == .null)
            #expect(try await client.send("PING") == .status("PONG"))
        }
    }

    @Test("close fails the callers still waiting; later calls throw CONNECT")
    func close() async throws {
        try await Self.withClient { client, prefix in
            async let blocked = RedisFixture.outcome {
                try await client.send(RedisCommand("BLPOP", prefix + "empty", 5), timeout: .seconds(10))
            }
            try await Task.sleep(for: .milliseconds(100))
            client.close()
            let result = await blocked
            let error = try #require(throws: RedisError.self) { try result.get() }
            #expect(error.outcomeUnknown)
            let later = try await #require(throws: RedisError.self) { try await client.send("PING") }
            #expect(later.code == .connect)
        }
    }

    @Test("two connections take commands in turn")
    func twoConnections() async throws {
        try await Self.withClient(size: 2) { client, _ in
            let ids = try await [client.send("CLIENT", "ID"), client.send("CLIENT", "ID"), client.send("CLIENT", "ID")]
            #expect(ids[0] != ids[1])
            #expect(ids[0] == ids[2])
        }
    }

    // MARK: Helpers

    /// A loopback port nothing listens on.
    static func closedPort() throws -> Int {
        let listener = try SilentListener(backlogFilled: false)
        let port = listener.port
        listener.close()
        return port
    }

    /// A listening socket that never accepts. With `backlogFilled`, its accept queue is filled
    /// first, so a further connect's handshake is not answered (`handshakesHang`) — how Linux
    /// treats SYNs to a full queue.
    final class SilentListener: @unchecked Sendable {
        let descriptor: Int32
        let port: Int
        private var fillers: [Int32] = []
        private(set) var handshakesHang = false

        init(backlogFilled: Bool = true) throws {
            let listening = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listening, $0, length) }
            }
            guard bound == 0, listen(listening, 0) == 0 else { throw TestSetupError("cannot listen") }
            withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(listening, $0, &length) }
            }
            descriptor = listening
            port = Int(UInt16(bigEndian: address.sin_port))
            guard backlogFilled else { return }
            // Fill the queue with non-blocking connects until one stays in progress.
            for _ in 0..<8 {
                let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                fillers.append(filler)
                let result = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(filler, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                if result != 0 && errno == EINPROGRESS {
                    var poller = pollfd(fd: filler, events: Int16(POLLOUT), revents: 0)
                    if poll(&poller, 1, 100) == 0 {
                        handshakesHang = true
                        break
                    }
                }
            }
        }

        func close() {
            for filler in fillers { _ = Foundation.close(filler) }
            fillers = []
            _ = Foundation.close(descriptor)
        }
    }
}

/// In the serialized script suite: its `SCRIPT FLUSH` is server-global and must not run under the
/// script suite's own checks of what the server has cached.
extension RedisScriptTests {
    @Test("a script runs by SHA and reloads itself after SCRIPT FLUSH")
    func scripts() async throws {
        try await RedisClientTests.withClient { client, prefix in
            let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
            let key = prefix + "n"
            #expect(try await client.evaluate(script, keys: [key], arguments: [2]) == .integer(2))
            let sha = try #require(script.sha)
            #expect(try await client.evaluate(script, keys: [key], arguments: [3]) == .integer(5))
            #expect(try await client.send("SCRIPT", "FLUSH") == .status("OK"))
            #expect(try await client.evaluate(script, keys: [key], arguments: [4]) == .integer(9))
            #expect(script.sha == sha)
            let failing = RedisScript("return redis.error_reply('REUSED first used for something else')")
            let error = try await #require(throws: RedisError.self) { try await client.evaluate(failing) }
            #expect(error.code == RedisError.Code(rawValue: "REUSED"))
        }
    }
}
