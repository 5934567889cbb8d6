import Foundation
import LeaseholdLocalStack
import LeaseholdRedis

/// A throwaway `redis-server` of a test's own, to freeze with `SIGSTOP` (a Redis that stops
/// answering without closing connections) or pause with `CLIENT PAUSE ALL` without disturbing the
/// shared server other tests use.
///
/// Started with ``ChildProcess`` (posix_spawn, reaped by `waitpid` on its own pid), not
/// Foundation's `Process`, whose `waitUntilExit` was seen spinning forever on Linux after the
/// child had died. Stopped with `SIGKILL` only, so the odd signal dispositions a child of a Swift
/// process inherits do not matter.
public final class PrivateRedisServer: Sendable {
    public let port: Int
    private let process: ChildProcess

    /// Starts on a free port below the ephemeral range (``LowPorts``); should another process
    /// bind that port between the check and the server's own bind, tries once more on another.
    public init() async throws {
        var attempt = 0
        while true {
            attempt += 1
            let port = try LowPorts.free()
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("lh-private-redis-\(port).log")
            let process = try ChildProcess(
                name: "redis-\(port)", executable: URL(fileURLWithPath: "/usr/bin/redis-server"),
                arguments: [
                    "--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no",
                    "--daemonize", "no", "--logfile", "",
                ],
                log: log)
            if try await Self.answers(port: port, process: process) {
                self.port = port
                self.process = process
                return
            }
            let output = process.output.suffix(1000)
            process.send(SIGKILL)
            _ = await process.waitForExit(timeout: .seconds(10))
            guard attempt < 2, output.contains("Address already in use") else {
                throw TestSetupError("redis-server on port \(port) did not start:\n\(output)")
            }
        }
    }

    /// Whether the server on `port` answers PING within 10 s; false as soon as it has exited.
    private static func answers(port: Int, process: ChildProcess) async throws -> Bool {
        let configuration = RedisConfiguration(port: port, connectTimeout: .seconds(1), commandTimeout: .seconds(1))
        let deadline = ContinuousClock.now + .seconds(10)
        let client = RedisClient(configuration: configuration, label: "leasehold.tests.probe")
        defer { client.close() }
        while true {
            if process.isRunning, (try? await client.send("PING")) != nil { return true }
            guard ContinuousClock.now < deadline, process.isRunning else { return false }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    public func configuration(commandTimeout: Duration) -> RedisConfiguration {
        RedisConfiguration(port: port, connectTimeout: .seconds(1), commandTimeout: commandTimeout)
    }

    /// Freezes the server: connections stay open, nothing is answered.
    public func freeze() { process.send(SIGSTOP) }

    public func thaw() { process.send(SIGCONT) }

    public func kill() async {
        guard process.isRunning else { return }
        process.send(SIGKILL)
        _ = await process.waitForExit(timeout: .seconds(10))
        try? FileManager.default.removeItem(at: process.log)
    }
}
