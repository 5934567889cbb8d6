import Foundation
import LeaseholdLocalStack
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Whether a failed call may still have run on the server (``RedisError/outcomeUnknown``): what
/// ingress tells a client whose request it could not confirm. Against a Redis of its own, which
/// the test stops (SIGSTOP) and kills.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct RedisOutcomeTests {
    @Test func aReplyLostMidCallIsUnknownAndARefusedConnectionIsNot() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-outcome-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let port = try freeLoopbackPort()
        let candidates = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        guard let binary = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            Issue.record("redis-server not found in \(candidates)")
            return
        }
        let server = try ChildProcess(
            name: "redis", executable: URL(fileURLWithPath: binary),
            arguments: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            log: directory.appendingPathComponent("redis.log"))
        defer { server.send(SIGKILL) }
        let client = RedisClient(
            configuration: RedisConfiguration(port: port, commandTimeout: .milliseconds(300)), size: 1)
        defer { client.close() }
        let deadline = ContinuousClock.now + .seconds(20)
        while (try? await client.send("PING")) == nil {
            try #require(ContinuousClock.now < deadline, "redis-server did not start: \(server.output)")
            try await Task.sleep(for: .milliseconds(50))
        }

        // Sent, and no reply within the timeout: unknown — and it did run once the server went on.
        server.send(SIGSTOP)
        let stalled = try #require(await Self.failure { try await client.send("SET", "k", "ran") })
        #expect(stalled.outcomeUnknown, "\(stalled)")
        #expect(stalled.code == .timeout)
        server.send(SIGCONT)
        #expect(try await client.send("GET", "k").string == "ran", "the command the client saw fail had run")

        // An error reply is a refusal: the server said no.
        let refused = try #require(await Self.failure { try await client.send("LPUSH", "k", "x") })
        #expect(refused.code == .wrongType)
        #expect(!refused.outcomeUnknown)

        // The server gone: once no connection can be opened, nothing was sent.
        server.send(SIGKILL)
        await server.stop(signal: SIGKILL, timeout: .seconds(5))
        var last: RedisError?
        for _ in 0..<3 {
            last = await Self.failure { try await client.send("SET", "k", "again") }
        }
        let gone = try #require(last)
        #expect(gone.source == .connection)
        #expect(!gone.outcomeUnknown, "connection refused: the command never left: \(gone)")
    }

    /// The `RedisError` `body` throws, or `nil` when it succeeds.
    static func failure(_ body: () async throws -> RedisValue) async -> RedisError? {
        do {
            _ = try await body()
            return nil
        } catch let error as RedisError {
            return error
        } catch {
            Issue.record("not a RedisError: \(error)")
            return nil
        }
    }
}
