import Foundation
import LeaseholdReactor

/// One keep-alive HTTP/1.1 connection of the load generator, on a non-blocking socket driven by a
/// ``Reactor``: writes a request prepared as bytes, reads the answer's status line, the headers
/// the load test looks at and the body (by `Content-Length` or chunked), and is reused for the
/// next request.
///
/// Why not a general HTTP client: the load generator shares the machine with what it measures,
/// and a request through a full client stack (and its event loop hand-offs) cost about as much
/// CPU as ingress spends answering it. Here a request is one `write` and, usually, one `read`, and
/// every client connection of a run is served by one reactor thread with no hand-off. It speaks
/// only the plain `http://` the load test sends to; anything it does not understand in an answer
/// is an error for that request (and the connection is dropped, then opened again).
///
/// Reactor thread only, one request at a time (each sending client owns one connection). The
/// connection owns its socket and closes it in ``close()``, after removing it from the reactor.
final class LoadHTTPConnection {
    /// What the load test needs from an answer.
    struct Answer {
        var status: Int
        /// `Leasehold-Outcome` (`unknown` or `refused` on a 503).
        var outcome: String?
        /// Whether the answer carries a `Retry-After` header (every 503 of ingress must).
        var retryAfter = false
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let reactor: Reactor
    let address: sockaddr_in
    private var socket: Int32 = -1
    private var buffer: [UInt8] = []
    /// Where the unread part of `buffer` starts.
    private var start = 0

    /// - Parameter address: an IPv4 address and port (see ``resolve(_:)``).
    init(reactor: Reactor, address: sockaddr_in) {
        self.reactor = reactor
        self.address = address
        buffer.reserveCapacity(16 * 1024)
    }

    deinit {
        if socket >= 0 { Foundation.close(socket) }
    }

    /// The IPv4 address of an `http://host:port` URL (resolved once, before the run).
    static func resolve(_ url: String) throws -> sockaddr_in {
        guard let components = URLComponents(string: url), components.scheme == "http", let host = components.host
        else { throw Failure(description: "not an http:// URL: \(url)") }
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(components.port ?? 80), &hints, &list) == 0, let first = list,
            let found = first.pointee.ai_addr
        else { throw Failure(description: "cannot resolve \(host)") }
        defer { freeaddrinfo(list) }
        return found.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
    }

    /// Sends `request` (a complete HTTP/1.1 request) and reads the answer, both by `deadline`.
    /// Opens the connection first when it has none (the first request, or after a failure).
    func exchange(_ request: [UInt8], deadline: ContinuousClock.Instant) async throws -> Answer {
        precondition(reactor.isCurrent, "LoadHTTPConnection off its reactor's thread")
        do {
            if socket < 0 { try await open(deadline: deadline) }
            try await write(request, deadline: deadline)
            let answer = try await readAnswer(deadline: deadline)
            return answer
        } catch {
            close()
            throw error
        }
    }

    /// Closes the socket (the next exchange opens a new one); safe to call twice.
    func close() {
        guard socket >= 0 else { return }
        reactor.forget(socket)
        Foundation.close(socket)
        socket = -1
        buffer.removeAll(keepingCapacity: true)
        start = 0
    }

    // MARK: Private

    private func open(deadline: ContinuousClock.Instant) async throws {
        let descriptor = Foundation.socket(
            AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        socket = descriptor
        var on: Int32 = 1
        _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        var address = self.address
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result != 0 {
            guard errno == EINPROGRESS else {
                throw Failure(description: "connect: \(String(cString: strerror(errno)))")
            }
            guard try await reactor.writable(descriptor, deadline: deadline) else {
                throw Failure(description: "connect timed out")
            }
            var problem: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &problem, &size)
            guard problem == 0 else { throw Failure(description: "connect: \(String(cString: strerror(problem)))") }
        }
    }

    private func write(_ request: [UInt8], deadline: ContinuousClock.Instant) async throws {
        var offset = 0
        while offset < request.count {
            let written = request.withUnsafeBytes {
                Foundation.send(socket, $0.baseAddress! + offset, request.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                offset += written
            } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                guard try await reactor.writable(socket, deadline: deadline) else {
                    throw Failure(description: "timed out sending")
                }
            } else if written < 0 && errno == EINTR {
                continue
            } else {
                throw Failure(description: "send: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Reads more bytes into the buffer, waiting for the socket as needed.
    private func fill(deadline: ContinuousClock.Instant) async throws {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        while true {
            let received = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16 * 1024) { scratch in
                let count = Foundation.recv(socket, scratch.baseAddress!, scratch.count, 0)
                if count > 0 { buffer.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[0..<count])) }
                return count
            }
            if received > 0 { return }
            if received == 0 { throw Failure(description: "the server closed the connection") }
            if errno == EINTR { continue }
            guard errno == EAGAIN || errno == EWOULDBLOCK else {
                throw Failure(description: "recv: \(String(cString: strerror(errno)))")
            }
            guard try await reactor.readable(socket, deadline: deadline) else {
                throw Failure(description: "timed out waiting for the answer")
            }
        }
    }

    private func readAnswer(deadline: ContinuousClock.Instant) async throws -> Answer {
        // The head: up to the empty line.
        var headEnd: Int?
        while true {
            headEnd = Self.find([13, 10, 13, 10], in: buffer, from: start)
            if headEnd != nil { break }
            if buffer.count - start > 64 * 1024 { throw Failure(description: "answer head over 64 KiB") }
            try await fill(deadline: deadline)
        }
        let head = buffer[start..<headEnd!]
        start = headEnd! + 4
        var lines = head.split(separator: 10, omittingEmptySubsequences: false).map { line in
            line.last == 13 ? line.dropLast() : line
        }
        guard !lines.isEmpty else { throw Failure(description: "empty answer") }
        let statusLine = lines.removeFirst()
        let statusParts = statusLine.split(separator: 32, maxSplits: 2)
        guard statusParts.count >= 2, statusParts[0].starts(with: Array("HTTP/1.".utf8)),
            let status = Int(String(decoding: statusParts[1], as: UTF8.self))
        else { throw Failure(description: "malformed status line") }
        var length = 0
        var chunked = false
        var closes = false
        var outcome: String?
        var retryAfter = false
        for line in lines {
            guard let colon = line.firstIndex(of: 58) else { continue }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self).lowercased()
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingCharacters(in: .whitespaces)
            switch name {
            case "content-length":
                guard let parsed = Int(value), parsed >= 0 else { throw Failure(description: "bad Content-Length") }
                length = parsed
            case "transfer-encoding": chunked = value.lowercased().contains("chunked")
            case "connection": closes = value.lowercased() == "close"
            case "leasehold-outcome": outcome = value
            case "retry-after": retryAfter = !value.isEmpty
            default: break
            }
        }
        if chunked {
            try await skipChunkedBody(deadline: deadline)
        } else {
            guard length <= 64 * 1024 else { throw Failure(description: "answer body over 64 KiB") }
            while buffer.count - start < length { try await fill(deadline: deadline) }
            start += length
        }
        if closes { close() }
        return Answer(status: status, outcome: outcome, retryAfter: retryAfter)
    }

    private func skipChunkedBody(deadline: ContinuousClock.Instant) async throws {
        var total = 0
        while true {
            var lineEnd = Self.find([13, 10], in: buffer, from: start)
            while lineEnd == nil {
                try await fill(deadline: deadline)
                lineEnd = Self.find([13, 10], in: buffer, from: start)
            }
            let sizeText =
                String(decoding: buffer[start..<lineEnd!], as: UTF8.self)
                .split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw Failure(description: "bad chunk size")
            }
            total += size
            guard total <= 64 * 1024 else { throw Failure(description: "answer body over 64 KiB") }
            start = lineEnd! + 2
            // The chunk and its CRLF (the last chunk: the CRLF ending the trailers, none expected).
            while buffer.count - start < size + 2 { try await fill(deadline: deadline) }
            start += size + 2
            if size == 0 { return }
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard haystack.count - from >= needle.count else { return nil }
        var index = from
        let last = haystack.count - needle.count
        while index <= last {
            if haystack[index] == needle[0] {
                var matches = true
                for offset in 1..<needle.count where haystack[index + offset] != needle[offset] {
                    matches = false
                    break
                }
                if matches { return index }
            }
            index += 1
        }
        return nil
    }
}
