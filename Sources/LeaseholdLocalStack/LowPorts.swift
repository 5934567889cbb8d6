import Foundation
import NIOConcurrencyHelpers

/// Free loopback ports for servers started on this machine (the demo's and tests' Redis Cluster
/// nodes, the tests' PostgreSQL primary and standby): below the kernel's ephemeral range, because a port in that range may be
/// the local end of an outgoing connection by the time the server binds it, and never one handed
/// out before in this process, because servers started at once by parallel tests must not pick
/// the same port before either has bound it.
public enum LowPorts {
    private static let handedOut = NIOLockedValueBox<Set<Int>>([])

    /// One port nothing is bound to.
    public static func free() throws -> Int {
        try free(1)[0]
    }

    /// `count` distinct ports nothing is bound to.
    public static func free(_ count: Int) throws -> [Int] {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let low = range.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32768
        let upper = low > 20000 ? low : 32768
        return try handedOut.withLockedValue { handedOut in
            var ports: [Int] = []
            for _ in 0..<(200 * count) where ports.count < count {
                let port = Int.random(in: 10000..<upper)
                if !handedOut.contains(port), canBind(port) {
                    handedOut.insert(port)
                    ports.append(port)
                }
            }
            guard ports.count == count else { throw LocalRedisClusterError("no \(count) free ports below \(upper)") }
            return ports
        }
    }

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
