import Foundation
import LeaseholdRedis
import LeaseholdTesting

/// A throwaway `redis-server` of this test's own, to freeze with `SIGSTOP` (a Redis that stops
/// answering without closing connections) without disturbing the shared server other tests use.
///
/// Stopped with `SIGKILL` only, so the odd signal dispositions a child of a Swift process
/// inherits do not matter.
final class PrivateRedisServer: Sendable {
    let port: Int
    private let process: Process

    init() async throws {
        let port = try Self.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = [
            "--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--logfile", "",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
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
                kill()
                throw TestSetupError("redis-server on port \(port) did not start")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func configuration(commandTimeout: Duration) -> RedisConfiguration {
        RedisConfiguration(port: port, connectTimeout: .seconds(1), commandTimeout: commandTimeout)
    }

    /// Freezes the server: connections stay open, nothing is answered.
    func freeze() { _ = Foundation.kill(process.processIdentifier, SIGSTOP) }

    func thaw() { _ = Foundation.kill(process.processIdentifier, SIGCONT) }

    func kill() {
        guard process.isRunning else { return }
        _ = Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
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
