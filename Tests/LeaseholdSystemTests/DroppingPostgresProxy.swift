import Foundation
import LeaseholdTesting
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A loopback TCP proxy in front of PostgreSQL that loses one connection at the worst moment:
/// right after the first statement containing `marker` has been answered by the server (so it
/// ran, and in autocommit committed), either before forwarding any of the answer (`.beforeReply`:
/// the client never learns the outcome) or after forwarding the answer's rows and command tag but
/// not its closing ReadyForQuery (`.afterReply`: the client has the result but not the statement's
/// end). Every other byte, of every connection, passes through untouched.
///
/// Plain threads and blocking sockets: the test's own server, not the code under test.
final class DroppingPostgresProxy: @unchecked Sendable {
    enum Drop { case beforeReply, afterReply }

    let port: Int
    private let listener: Int32
    private let upstreamPort: Int
    private let marker: [UInt8]
    private let drop: Drop
    /// The marker was seen and its connection armed (only the first one is).
    private let triggered = Atomic<Bool>(false)
    /// The armed connection was cut.
    private let droppedFlag = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)

    var dropped: Bool { droppedFlag.load(ordering: .acquiring) }

    init(upstreamPort: Int, marker: String, drop: Drop) throws {
        self.upstreamPort = upstreamPort
        self.marker = Array(marker.utf8)
        self.drop = drop
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw TestSetupError("socket: \(errno)") }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(listener, 64) == 0 else { throw TestSetupError("bind/listen: \(errno)") }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.listener = listener
        port = Int(UInt16(bigEndian: actual.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// `url` with its host and port replaced by the proxy's.
    static func url(_ url: String, through proxy: DroppingPostgresProxy) -> String {
        var components = URLComponents(string: url)!
        components.host = "127.0.0.1"
        components.port = proxy.port
        return components.string!
    }

    func stop() {
        stopped.store(true, ordering: .releasing)
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .acquiring) {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: upstreamPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard connected == 0 else {
                close(client)
                close(server)
                continue
            }
            let pair = Pair(client: client, server: server)
            Thread { [self] in pumpToServer(pair) }.start()
            Thread { [self] in pumpToClient(pair) }.start()
        }
    }

    /// One proxied connection.
    private final class Pair: @unchecked Sendable {
        let client: Int32
        let server: Int32
        /// The marker went through on this connection: the next answer is cut.
        let armed = Atomic<Bool>(false)
        private let closed = Atomic<Bool>(false)
        private let pumpsDone = Atomic<Int>(0)

        init(client: Int32, server: Int32) {
            self.client = client
            self.server = server
        }

        func cut() {
            guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(server, Int32(SHUT_RDWR))
        }

        /// Each pump calls this when it ends; the second closes both sockets (not before, or a
        /// descriptor number could be reused under the other pump's feet).
        func pumpEnded() {
            cut()
            if pumpsDone.add(1, ordering: .acquiringAndReleasing).newValue == 2 {
                close(client)
                close(server)
            }
        }
    }

    private func pumpToServer(_ pair: Pair) {
        var tail: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(pair.client, &buffer, buffer.count)
            guard count > 0 else { break }
            let chunk = Array(buffer[0..<count])
            let window = tail + chunk
            if !pair.armed.load(ordering: .acquiring), contains(window, marker),
                !triggered.exchange(true, ordering: .acquiringAndReleasing)
            {
                pair.armed.store(true, ordering: .releasing)
            }
            tail = Array(window.suffix(marker.count))
            guard writeAll(pair.server, chunk) else { break }
        }
        pair.pumpEnded()
    }

    private func pumpToClient(_ pair: Pair) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var pending: [UInt8] = []
        while true {
            let count = read(pair.server, &buffer, buffer.count)
            guard count > 0 else { break }
            let chunk = Array(buffer[0..<count])
            guard pair.armed.load(ordering: .acquiring) else {
                guard writeAll(pair.client, chunk) else { break }
                continue
            }
            // The armed statement's answer: whole protocol messages, each a type byte and a length.
            pending += chunk
            var forward: [UInt8] = []
            var end = false
            while pending.count >= 5 {
                let length = Int(pending[1]) << 24 | Int(pending[2]) << 16 | Int(pending[3]) << 8 | Int(pending[4])
                guard pending.count >= 1 + length else { break }
                let message = Array(pending[0..<(1 + length)])
                pending.removeFirst(1 + length)
                if message[0] == UInt8(ascii: "Z") {
                    end = true
                    break
                }
                if drop == .afterReply { forward += message }
            }
            if !forward.isEmpty { _ = writeAll(pair.client, forward) }
            if end {
                droppedFlag.store(true, ordering: .releasing)
                pair.cut()
                break
            }
        }
        pair.pumpEnded()
    }

    private func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if Array(haystack[start..<(start + needle.count)]) == needle { return true }
        }
        return false
    }
}
