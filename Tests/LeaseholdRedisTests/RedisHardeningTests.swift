import Foundation
import LeaseholdReactor
import LeaseholdTesting
import Testing

@testable import LeaseholdRedis

/// Issue 25 on the non-blocking client: replies that arrived while the reactor was held up are
/// read before any deadline is declared passed, and a child process inherits none of the
/// connection's descriptors.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct RedisHardeningTests {
    @Test("200 pipelined commands whose replies arrived while the reactor stalled past their timeout all get them")
    func repliesWaitingInTheSocketOutliveAStall() async throws {
        // A 1 s command timeout and a 1.5 s stall: the same as 5.1 s against the default 5 s.
        try await RedisClientTests.withClient(configure: { $0.commandTimeout = .seconds(1) }) {
            client, _ in
            let reactor = client.reactor
            // The connection is open before the pipeline, so the pipeline is queued without waiting.
            #expect(try await client.send("PING") == .status("PONG"))
            // About 100 kB of replies: more than one read (hiredis reads 16 kB at a time), so the
            // reader finds its deadline passed with replies still waiting in the socket.
            let padding = String(repeating: "x", count: 500)
            let commands = (0..<200).map { RedisCommand("ECHO", "\($0)-\(padding)") }
            let replies = try await withThrowingTaskGroup(of: [RedisValue].self) { group in
                group.addTask { try await client.pipeline(commands) }
                group.addTask {
                    // Runs right after the pipeline's job, so this call is queued after the
                    // pipeline's flush: the reactor stalls with the commands on the wire and the
                    // reader waiting, and the replies arrive during the stall.
                    reactor.execute(afterPendingJobs: { Thread.sleep(forTimeInterval: 1.5) })
                    return []
                }
                var replies: [RedisValue] = []
                for try await part in group { replies += part }
                return replies
            }
            #expect(replies.map(\.string) == (0..<200).map { "\($0)-\(padding)" })
        }
    }

    @Test("the socket and its dup are closed on exec, so child processes do not inherit them")
    func descriptorsAreClosedOnExec() async throws {
        let configuration = try IntegrationEnvironment.redisConfiguration()
        let reactor = Reactor(label: "test.redis-cloexec")
        defer { reactor.shutDown() }
        let flags = try await withTaskExecutorPreference(reactor) {
            let connection = try await RedisConnection.connect(configuration: configuration, reactor: reactor)
            defer { connection.close() }
            #expect(try await connection.send("PING") == .status("PONG"))
            return (fcntl(connection.socket, F_GETFD), fcntl(connection.writeSocket, F_GETFD))
        }
        #expect(flags.0 >= 0 && flags.0 & FD_CLOEXEC != 0, "the socket's descriptor flags are \(flags.0)")
        #expect(flags.1 >= 0 && flags.1 & FD_CLOEXEC != 0, "the dup's descriptor flags are \(flags.1)")
    }
}
