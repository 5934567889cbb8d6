import Foundation

/// The fields of `/proc/<pid>/stat` that CPU accounting needs (Linux, proc(5)).
///
/// CPU times are in clock ticks (``ticksPerSecond``). `utime`/`stime` cover every thread of the
/// process, live or exited; `cutime`/`cstime` the children it has waited for (PostgreSQL's
/// postmaster reaps every backend, so theirs end up there).
public struct ProcessStat: Sendable, Equatable {
    public var pid: Int32
    /// The executable name (field 2, without its parentheses; it may itself contain spaces and `)`).
    public var command: String
    public var state: Character
    public var parentPID: Int32
    public var userTicks: UInt64
    public var systemTicks: UInt64
    public var childrenUserTicks: UInt64
    public var childrenSystemTicks: UInt64

    /// Own CPU time, user + system, in ticks.
    public var ownTicks: UInt64 { userTicks + systemTicks }
    /// The waited-for children's CPU time, user + system, in ticks.
    public var childrenTicks: UInt64 { childrenUserTicks + childrenSystemTicks }

    /// Parses one `/proc/<pid>/stat` line; `nil` when it is not one.
    ///
    /// The command sits between the first `(` and the *last* `)`: it may contain spaces and
    /// parentheses (`123 (a) b) R 1 …`), and everything after the last `)` is space-separated
    /// numbers: state (3), ppid (4), …, utime (14), stime (15), cutime (16), cstime (17).
    public init?(line: String) {
        guard let open = line.firstIndex(of: "("), let close = line.lastIndex(of: ")"), open < close,
            let pid = Int32(line[..<open].trimmingCharacters(in: .whitespaces))
        else { return nil }
        let rest = line[line.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // rest[0] is field 3 (state), so field n is rest[n - 3].
        guard rest.count >= 15, let state = rest[0].first, rest[0].count == 1,
            let parentPID = Int32(rest[1]), let user = UInt64(rest[11]), let system = UInt64(rest[12]),
            let childrenUser = Int64(rest[13]), let childrenSystem = Int64(rest[14])
        else { return nil }
        self.pid = pid
        self.command = String(line[line.index(after: open)..<close])
        self.state = state
        self.parentPID = parentPID
        self.userTicks = user
        self.systemTicks = system
        self.childrenUserTicks = UInt64(max(0, childrenUser))
        self.childrenSystemTicks = UInt64(max(0, childrenSystem))
    }

    /// `/proc/<pid>/stat` of a live process; `nil` when it is gone (or this is not Linux).
    public static func read(pid: Int32) -> ProcessStat? {
        guard let text = readSmallFile("/proc/\(pid)/stat") else { return nil }
        return ProcessStat(line: text.trimmingCharacters(in: .newlines))
    }

    /// `/proc/self/stat`.
    public static func current() -> ProcessStat? {
        guard let text = readSmallFile("/proc/self/stat") else { return nil }
        return ProcessStat(line: text.trimmingCharacters(in: .newlines))
    }

    /// Every live process whose parent is `parent` (one pass over `/proc`).
    public static func children(of parent: Int32) -> [ProcessStat] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { entry in
            guard let pid = Int32(entry) else { return nil }
            guard let stat = read(pid: pid), stat.parentPID == parent else { return nil }
            return stat
        }
    }

    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
    public static let ticksPerSecond: Double = {
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        return ticks > 0 ? Double(ticks) : 100
    }()
}

/// The resident set size of a live process, from `VmRSS` in `/proc/<pid>/status`, in bytes.
public func residentSetBytes(pid: Int32) -> Int? {
    guard let text = readSmallFile("/proc/\(pid)/status") else { return nil }
    return parseResidentSetBytes(status: text)
}

/// `VmRSS:   12345 kB` in a `/proc/<pid>/status` text, in bytes; `nil` without that line (a
/// kernel thread, a zombie).
public func parseResidentSetBytes(status: String) -> Int? {
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let parts = line.dropFirst("VmRSS:".count).split(omittingEmptySubsequences: true) { $0 == " " || $0 == "\t" }
        guard let value = parts.first.flatMap({ Int($0) }) else { return nil }
        let unit = parts.count > 1 ? parts[1].lowercased() : "kb"
        return unit == "kb" ? value * 1024 : value
    }
    return nil
}

/// Reads a `/proc` file (their size reads as 0, so not through `Data(contentsOf:)`'s size hint).
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        bytes += buffer[0..<count]
    }
    return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
}
