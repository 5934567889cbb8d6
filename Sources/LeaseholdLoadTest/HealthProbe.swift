import Foundation
import Histogram
import NIOConcurrencyHelpers

/// Asks health endpoints (`/healthz`, `/readyz`) every `interval` while a load test runs, the way
/// an orchestrator's health check does (a new connection each time, `Connection: close`), and
/// keeps how long each answer took.
///
/// Each endpoint is asked from a thread of its own with blocking sockets, apart from the load
/// generator's reactor and Swift's cooperative pool (so a busy load generator does not show up as
/// a slow endpoint) and from the other endpoints (so one slow endpoint does not delay the next).
/// Each probe has a 2 s deadline; an error, a timeout or any status but 200 is a failure.
public final class HealthProbe: Sendable {
    /// One endpoint to ask.
    public struct Target: Sendable, Equatable, Codable {
        /// What the report calls it, e.g. `ingress-0 /readyz`.
        public var name: String
        /// `http://host:port/path` (IPv4 host).
        public var url: String

        public init(name: String, url: String) {
            self.name = name
            self.url = url
        }
    }

    /// What one endpoint's probes measured; latencies in milliseconds.
    public struct Result: Sendable, Codable, Equatable {
        public var name: String
        public var url: String
        public var probes: Int
        /// Probes answered with anything but 200, or not at all.
        public var failures: Int
        /// The first failure, in words.
        public var firstFailure: String?
        /// Probes that took longer than ``HealthProbe/slowThreshold``.
        public var slow: Int
        public var latency: LatencySummary
    }

    /// The answer time the overload benchmark holds every probe to.
    public static let slowThreshold: Duration = .milliseconds(100)

    private struct Endpoint {
        var target: Target
        var address: sockaddr_in
        var request: [UInt8]
        var histogram = LatencySummary.makeHistogram()
        var probes = 0
        var failures = 0
        var firstFailure: String?
        var slow = 0
    }

    private struct State {
        var endpoints: [Endpoint]
        var stopping = false
    }

    private let state: NIOLockedValueBox<State>
    private let interval: Duration
    private let finished = DispatchSemaphore(value: 0)
    private let threads: Int

    /// Resolves every target's address; throws for a URL it cannot probe.
    public init(targets: [Target], interval: Duration = .milliseconds(100)) throws {
        let endpoints = try targets.map { target -> Endpoint in
            guard let components = URLComponents(string: target.url) else {
                throw LoadHTTPConnection.Failure(description: "not a URL: \(target.url)")
            }
            let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
            let host = components.host ?? "localhost"
            return Endpoint(
                target: target, address: try LoadHTTPConnection.resolve(target.url),
                request: Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8))
        }
        state = NIOLockedValueBox(State(endpoints: endpoints))
        self.interval = interval
        threads = endpoints.count
    }

    /// Starts probing, a thread per endpoint, until ``stop()``.
    public func start() {
        for index in 0..<threads {
            let thread = Thread { [self] in
                self.loop(index)
                self.finished.signal()
            }
            thread.name = "leasehold.health-probe"
            thread.start()
        }
    }

    /// Stops probing (after the probes in flight) and returns what every endpoint measured.
    public func stop() -> [Result] {
        state.withLockedValue { $0.stopping = true }
        for _ in 0..<threads { finished.wait() }
        return state.withLockedValue { state in
            state.endpoints.map { endpoint in
                Result(
                    name: endpoint.target.name, url: endpoint.target.url, probes: endpoint.probes,
                    failures: endpoint.failures, firstFailure: endpoint.firstFailure, slow: endpoint.slow,
                    latency: LatencySummary(endpoint.histogram))
            }
        }
    }

    private func loop(_ index: Int) {
        let (address, request) = state.withLockedValue {
            ($0.endpoints[index].address, $0.endpoints[index].request)
        }
        var next = ContinuousClock.now
        while !state.withLockedValue({ $0.stopping }) {
            let started = ContinuousClock.now
            let failure = Self.probe(address: address, request: request)
            let took = started.duration(to: .now)
            state.withLockedValue { state in
                state.endpoints[index].probes += 1
                _ = state.endpoints[index].histogram.record(UInt64(max(1, took.microseconds)))
                if took > Self.slowThreshold { state.endpoints[index].slow += 1 }
                if let failure {
                    state.endpoints[index].failures += 1
                    if state.endpoints[index].firstFailure == nil { state.endpoints[index].firstFailure = failure }
                }
            }
            next += interval
            let now = ContinuousClock.now
            if next > now {
                Thread.sleep(forTimeInterval: now.duration(to: next).seconds)
            } else {
                next = now
            }
        }
    }

    /// One probe: `nil` when it was answered 200, else what went wrong.
    private static func probe(address: sockaddr_in, request: [UInt8]) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return "socket: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = address
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return "connect: \(String(cString: strerror(errno)))" }
        let written = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard written == request.count else { return "send: \(String(cString: strerror(errno)))" }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let read = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if read > 0 {
                answer += chunk[0..<read]
                guard answer.count < 64 * 1024 else { return "answer over 64 KiB" }
            } else if read == 0 {
                break
            } else if errno == EINTR {
                continue
            } else {
                return errno == EAGAIN || errno == EWOULDBLOCK
                    ? "no answer within 2 s" : "recv: \(String(cString: strerror(errno)))"
            }
        }
        let statusLine = answer.prefix { $0 != 13 && $0 != 10 }
        let parts = statusLine.split(separator: 32, maxSplits: 2)
        guard parts.count >= 2, let status = Int(String(decoding: parts[1], as: UTF8.self)) else {
            return "no HTTP answer"
        }
        return status == 200 ? nil : "HTTP \(status)"
    }
}
