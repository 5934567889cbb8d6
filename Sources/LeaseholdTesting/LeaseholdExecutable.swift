import Foundation
import LeaseholdLocalStack

/// The built `leasehold` executable, for tests that run real processes.
///
/// `$LEASEHOLD_BINARY` when set; otherwise `.build/debug/leasehold` under the package root
/// (`swift build` before `swift test`, as `.ci/run` does).
public enum LeaseholdExecutable {
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static var url: URL {
        if let configured = ProcessInfo.processInfo.environment["LEASEHOLD_BINARY"], !configured.isEmpty {
            return URL(fileURLWithPath: configured)
        }
        return packageRoot.appendingPathComponent(".build/debug/leasehold")
    }

    public static var migrationsDirectory: URL { packageRoot.appendingPathComponent("Migrations") }

    /// Starts `leasehold <arguments>` as a child process with a clean signal mask, its output
    /// going to a fresh log file in `directory`.
    public static func start(
        _ arguments: [String], name: String, in directory: URL, environment: [String: String] = [:]
    ) throws -> ChildProcess {
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw TestSetupError("\(url.path) is missing: run `swift build` before `swift test`")
        }
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { $1 }
        let log = directory.appendingPathComponent("\(name).log")
        try? FileManager.default.removeItem(at: log)
        return try ChildProcess(name: name, executable: url, arguments: arguments, log: log, environment: merged)
    }

    /// Runs `leasehold <arguments>` to completion (bounded by `timeout`) and returns its exit
    /// status and combined output.
    public static func run(
        _ arguments: [String], in directory: URL, environment: [String: String] = [:],
        timeout: Duration = .seconds(120)
    ) async throws -> (status: Int32, output: String) {
        let process = try start(
            arguments, name: "run-\(UUID().uuidString.prefix(8))", in: directory, environment: environment)
        guard await process.waitForExit(timeout: timeout) else {
            await process.stop(signal: SIGKILL, timeout: .seconds(5))
            throw TestSetupError("leasehold \(arguments.joined(separator: " ")) did not finish in \(timeout)")
        }
        return (process.exitStatus ?? -1, process.output)
    }
}

/// A test could not set itself up (missing binary, server unreachable).
public struct TestSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A fresh directory under the system temporary directory, readable by the `postgres` user.
public func makeTemporaryDirectory(_ prefix: String = "leasehold-test") throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    chmod(url.path, 0o755)
    return url
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` (one blocking connect).
public func loopbackAccepts(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}
