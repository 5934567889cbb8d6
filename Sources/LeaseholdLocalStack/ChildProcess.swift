import CLinux
import Dispatch
import Foundation
import Synchronization

/// A child process (postgres, redis-server, or a `leasehold` role in tests and the demo), its
/// output appended to a log file.
///
/// Spawned with `posix_spawn` rather than `Foundation.Process` on purpose: a child inherits its
/// parent's signal mask and ignored signals, and a Swift process has both in odd states (Dispatch
/// worker threads block most signals; ServiceLifecycle sets SIGTERM and SIGINT to `SIG_IGN` to
/// watch them itself). A redis-server started from such a thread ignores SIGTERM forever. Here
/// the child starts with an empty mask, default dispositions, its own process group (so a
/// terminal's Ctrl-C reaches only `leasehold`, which then stops the servers in order), and no
/// descriptor of the parent's beyond stdin, stdout and stderr.
///
/// Blocking waits poll `waitpid(WNOHANG)` with `Task.sleep`, never blocking a cooperative thread.
public final class ChildProcess: Sendable {
    public let name: String
    public let pid: Int32
    /// Where stdout and stderr go.
    public let log: URL
    private let exit = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments`; stdout and stderr append to `log`, stdin is /dev/null.
    public init(
        name: String, executable: URL, arguments: [String], log: URL,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        self.name = name
        self.log = log
        let logFD = open(log.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard logFD >= 0 else {
            throw LocalStackError.commandFailed(command: "open \(log.path)", status: errno, logTail: "")
        }
        defer { close(logFD) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, logFD, 1)
        posix_spawn_file_actions_adddup2(&actions, logFD, 2)
        // Nothing else: most descriptors are opened without O_CLOEXEC (pipe(2), libraries' own
        // sockets), and a child holding a copy keeps a pipe from reading as hung up, a socket
        // from closing, or a port bound, for as long as the child lives.
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var catchable = sigset_t()
        sigemptyset(&catchable)
        for signal: Int32 in 1..<32 where signal != SIGKILL && signal != SIGSTOP { sigaddset(&catchable, signal) }
        posix_spawnattr_setsigdefault(&attributes, &catchable)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv = [executable.path] + arguments
        let environment = environment.map { "\($0.key)=\($0.value)" }
        var child: pid_t = 0
        let status = withCStringArray(argv) { argvPointers in
            withCStringArray(environment) { environmentPointers in
                posix_spawn(&child, executable.path, &actions, &attributes, argvPointers, environmentPointers)
            }
        }
        guard status == 0 else {
            throw LocalStackError.commandFailed(
                command: argv.joined(separator: " "), status: status,
                logTail: "posix_spawn failed: \(String(cString: strerror(status)))")
        }
        self.pid = child
    }

    /// The exit status once the process has exited (reaping it), else `nil`.
    public var exitStatus: Int32? {
        exit.withLock { cached in
            if let cached { return cached }
            var status: Int32 = 0
            guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
            // WIFEXITED / WEXITSTATUS / WTERMSIG are macros; decode by hand.
            let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            cached = code
            return code
        }
    }

    public var isRunning: Bool { exitStatus == nil }

    /// Sends `signal` and returns at once.
    public func send(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// What the process has written so far.
    public var output: String {
        (try? String(contentsOf: log, encoding: .utf8)) ?? ""
    }

    /// Sends `signal`, waits up to `timeout` for the process to exit, then kills it.
    public func stop(signal: Int32, timeout: Duration) async {
        guard isRunning else { return }
        kill(pid, signal)
        if await waitForExit(timeout: timeout) { return }
        kill(pid, SIGKILL)
        _ = await waitForExit(timeout: .seconds(10))
    }

    /// Whether the process exited within `timeout`.
    public func waitForExit(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }
}

/// Calls `body` with a NULL-terminated `char *[]` that lives only for the call.
func withCStringArray<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let duplicated = strings.map { strdup($0) }
    defer { duplicated.forEach { free($0) } }
    return body(duplicated + [nil])
}

/// Runs a short blocking command (initdb) to completion on a Dispatch queue; throws with its
/// output when it fails.
func runToCompletion(_ executable: URL, _ arguments: [String], log: URL) async throws {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        DispatchQueue.global().async {
            do {
                let server = try ChildProcess(
                    name: executable.lastPathComponent, executable: executable, arguments: arguments, log: log)
                while server.isRunning { usleep(20_000) }
                guard server.exitStatus == 0 else {
                    throw LocalStackError.commandFailed(
                        command: ([executable.path] + arguments).joined(separator: " "),
                        status: server.exitStatus ?? -1, logTail: tail(of: log))
                }
                continuation.resume()
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

/// The last lines of a log file, for error messages.
func tail(of log: URL, lines: Int = 15) -> String {
    guard let text = try? String(contentsOf: log, encoding: .utf8) else { return "(no log)" }
    return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
}

/// A TCP port on 127.0.0.1 that nothing listens on right now, for a server about to start:
/// one of ``LowPorts``, below the kernel's ephemeral range. A port the kernel picks from that
/// range (bind to port 0) can become the local end of an outgoing connection before the server
/// binds it — a Compose-topology test's worker lost its metrics port that way to one of the
/// connections the processes around it were opening.
public func freeLoopbackPort() throws -> Int {
    try LowPorts.free()
}
