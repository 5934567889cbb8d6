import Foundation
import LeaseholdOps
import LeaseholdRedis
import LeaseholdTesting

/// A throwaway `redis-server` of this test's own, to freeze with `SIGSTOP` (a Redis that stops
/// answering without closing connections) without disturbing the shared server other tests use.
///
/// Started with ``ChildProcess`` (posix_spawn, reaped by `waitpid` on its own pid), not
/// Foundation's `Process`, whose `waitUntilExit` was seen spinning forever on Linux after the
/// child had died. Stopped with `SIGKILL` only, so the odd signal dispositions a child of a Swift
/// process inherits do not matter.
final class PrivateRedisServer: Sendable {
    let port: Int
    private let process: ChildProcess

    init() async throws {
        let port = try Self.freePort()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("lh-private-redis-\(port).log")
        let process = try ChildProcess(
            name: "redis-\(port)", executable: URL(fileURLWithPath: "/usr/bin/redis-server"),
            arguments: [
                "--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--logfile", "",
            ],
            log: log)
        self.port = port
        self.process = process

        let configuration = RedisConfiguration(port: port, connectTimeout: .seconds(1), commandTimeout: .seconds(1))
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            if let connection = try? RedisConnection(configuration: configuration),
                (try? connection.send("PING")) != nil
            {
                return
            }
            guard ContinuousClock.now < deadline, process.isRunning else {
                await kill()
                throw TestSetupError("redis-server on port \(port) did not start:\n\(process.output.suffix(1000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func configuration(commandTimeout: Duration) -> RedisConfiguration {
        RedisConfiguration(port: port, connectTimeout: .seconds(1), commandTimeout: commandTimeout)
    }

    /// Freezes the server: connections stay open, nothing is answered.
    func freeze() { process.send(SIGSTOP) }

    func thaw() { process.send(SIGCONT) }

    func kill() async {
        guard process.isRunning else { return }
        process.send(SIGKILL)
        _ = await process.waitForExit(timeout: .seconds(10))
        try? FileManager.default.removeItem(at: process.log)
    }

    /// A port on 127.0.0.1 that nothing listens on now (the kernel picks it).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSetupError("socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw TestSetupError("bind: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
