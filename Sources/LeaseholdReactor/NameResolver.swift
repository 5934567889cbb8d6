import Foundation
import NIOConcurrencyHelpers

/// Resolves host names to addresses off the calling thread, so that a connection opened from a
/// ``Reactor`` never blocks the reactor in `getaddrinfo`.
///
/// Why: libpq (`PQconnectStartParams`) and hiredis (`redisConnectNonBlock`) resolve a host name
/// synchronously, on the thread that opens the connection. On a reactor that thread carries every
/// request and heartbeat of the process, and a name server that does not answer holds
/// `getaddrinfo` for its whole timeout (glibc: 5 s × 2 attempts, for A and AAAA), so every
/// reconnect would stall the whole process for that long. Here the lookup runs on a thread of its
/// own and the awaiting task resumes on its reactor; the connection is then opened by address.
///
/// Rules:
/// - Literal IPv4/IPv6 addresses come back as they are, with no lookup (``isLiteralAddress(_:)``);
///   callers leave Unix-socket paths alone.
/// - A lookup is bounded by the caller's deadline (a connection's connect timeout): past it the
///   caller gets ``NameResolutionError`` "name resolution timed out". The lookup's thread cannot be
///   interrupted and runs on until `getaddrinfo` returns (glibc bounds it by the `timeout` and
///   `attempts` of `resolv.conf`); its answer is kept for the next connect.
/// - Threads do not pile up: callers asking for a name whose lookup is still running share that
///   lookup (one thread per name at a time), and at most ``maxConcurrentLookups`` lookups run at
///   once in the process. Past that cap a name is not looked up: the caller gets its last good
///   addresses, or, with none, a ``NameResolutionError`` at once ("too many name resolutions in
///   progress").
/// - Last good addresses. A name's addresses from its last successful lookup are kept. When a
///   fresh lookup has not answered within ``staleAfter`` of its start, or cannot reach a name
///   server (`EAI_AGAIN`), the caller gets those instead of waiting: a hanging resolver then costs
///   a reconnect a few milliseconds, not its connect timeout, and the connection goes where the
///   name pointed last. A definite answer (the name does not exist) is never papered over.
public final class NameResolver: Sendable {
    /// The resolver every connection uses unless told otherwise.
    public static let shared = NameResolver()

    /// The most lookups (so resolver threads) running at once.
    public let maxConcurrentLookups: Int
    /// How long a caller with last good addresses waits for a fresh answer before using them.
    public let staleAfter: Duration
    private let lookup: @Sendable (String) -> Result<[String], NameResolutionError.Reason>
    private let state = NIOLockedValueBox(State())

    private struct State {
        var running: [String: Lookup] = [:]
        var lastGood: [String: [String]] = [:]
    }

    /// - Parameters:
    ///   - maxConcurrentLookups: the cap on lookups running at once (threads).
    ///   - staleAfter: see "Last good addresses" above.
    ///   - lookup: the blocking lookup, run on a thread of its own (``systemLookup(_:)`` by
    ///     default; tests pass one they control).
    public init(
        maxConcurrentLookups: Int = 16, staleAfter: Duration = .milliseconds(25),
        lookup: @escaping @Sendable (String) -> Result<[String], NameResolutionError.Reason> = NameResolver.systemLookup
    ) {
        precondition(maxConcurrentLookups >= 1, "a resolver needs at least one lookup")
        self.maxConcurrentLookups = maxConcurrentLookups
        self.staleAfter = staleAfter
        self.lookup = lookup
    }

    /// The addresses of `host` (numeric strings, in `getaddrinfo`'s order, without duplicates),
    /// or `[host]` for a literal address. Waits for the lookup until `deadline` (`nil`: as long as
    /// it takes). Awaiting it suspends the task only: call it from a task on a ``Reactor``.
    ///
    /// Throws ``NameResolutionError`` (the name does not resolve, the lookup timed out, or too
    /// many lookups are running), `CancellationError` when the task is cancelled meanwhile.
    public func addresses(of host: String, deadline: ContinuousClock.Instant?) async throws -> [String] {
        if Self.isLiteralAddress(host) { return [host] }
        try Task.checkCancellation()
        let asked = ContinuousClock.now
        let (running, lastGood): (Lookup?, [String]?) = state.withLockedValue { state in
            let lastGood = state.lastGood[host]
            if let running = state.running[host] { return (running, lastGood) }
            guard state.running.count < maxConcurrentLookups else { return (nil, lastGood) }
            let started = Lookup(host: host)
            state.running[host] = started
            return (started, lastGood)
        }
        guard let running else {
            if let lastGood { return lastGood }
            throw NameResolutionError(host: host, reason: .busy(maxConcurrentLookups))
        }
        if running.needsThread() { start(running) }
        if let lastGood {
            let patience = running.started + staleAfter
            switch try await running.result(until: deadline.map { min($0, patience) } ?? patience) {
            case .success(let addresses)?: return addresses
            case .failure(.failed(let message))?: throw NameResolutionError(host: host, reason: .failed(message))
            default: return lastGood  // no answer yet, or no name server reachable
            }
        }
        guard let result = try await running.result(until: deadline) else {
            let waited = deadline.map { asked.duration(to: $0) } ?? .zero
            throw NameResolutionError(host: host, reason: .timedOut(waited))
        }
        return try result.mapError { NameResolutionError(host: host, reason: $0) }.get()
    }

    /// Runs `running`'s lookup on a thread of its own.
    private func start(_ running: Lookup) {
        let thread = Thread { [self] in
            let result = lookup(running.host)
            state.withLockedValue { state in
                if state.running[running.host] === running { state.running[running.host] = nil }
                if case .success(let addresses) = result, !addresses.isEmpty {
                    state.lastGood[running.host] = addresses
                }
            }
            running.finish(result)
        }
        thread.name = "leasehold.resolver"
        thread.start()
    }

    /// Whether `host` is a literal IPv4 or IPv6 address (with or without a `%zone`), which needs no
    /// lookup.
    public static func isLiteralAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return true }
        let unzoned = host.split(separator: "%", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return inet_pton(AF_INET6, String(unzoned), &v6) == 1
    }

    /// `getaddrinfo(host)` for TCP, any family, as libpq asks for it: the numeric addresses in the
    /// order given, without duplicates. Blocks for as long as the name service takes.
    @Sendable
    public static func systemLookup(_ host: String) -> Result<[String], NameResolutionError.Reason> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0 else {
            let message = String(cString: gai_strerror(status))
            return .failure(status == EAI_AGAIN ? .temporary(message) : .failed(message))
        }
        defer { freeaddrinfo(list) }
        var addresses: [String] = []
        var entry = list
        while let current = entry {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if let address = current.pointee.ai_addr,
                getnameinfo(
                    address, current.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0
            {
                let text = String(cString: buffer)
                if !addresses.contains(text) { addresses.append(text) }
            }
            entry = current.pointee.ai_next
        }
        return addresses.isEmpty ? .failure(.failed("no address")) : .success(addresses)
    }
}

/// A host name that could not be turned into an address.
public struct NameResolutionError: Error, CustomStringConvertible, Sendable {
    public enum Reason: Error, Equatable, Sendable {
        /// No answer by the caller's deadline, this long after the lookup began.
        case timedOut(Duration)
        /// The name service could not be reached or answered "try again" (`EAI_AGAIN`).
        case temporary(String)
        /// A definite failure (the name does not exist, no address).
        case failed(String)
        /// The cap on concurrent lookups was reached and the name had no last good addresses.
        case busy(Int)

        var message: String {
            switch self {
            case .timedOut(let waited): "name resolution timed out after \(waited)"
            case .temporary(let text), .failed(let text): text
            case .busy(let cap): "too many name resolutions in progress (\(cap)); try again"
            }
        }
    }

    public var host: String
    public var reason: Reason

    public init(host: String, reason: Reason) {
        self.host = host
        self.reason = reason
    }

    public var description: String { "could not translate host name \"\(host)\" to address: \(reason.message)" }
}

/// One running lookup, shared by every caller asking for its name meanwhile.
private final class Lookup: Sendable {
    typealias Answer = Result<[String], NameResolutionError.Reason>

    let host: String
    let started = ContinuousClock.now
    private let state = NIOLockedValueBox(State())

    private struct State {
        var threadStarted = false
        var result: Answer?
        var waiters: [UInt64: CheckedContinuation<Answer, any Error>] = [:]
        var cancelled: Set<UInt64> = []
        var nextID: UInt64 = 0
    }

    init(host: String) { self.host = host }

    /// `true` once, for the caller that must start the thread.
    func needsThread() -> Bool {
        state.withLockedValue { state in
            defer { state.threadStarted = true }
            return !state.threadStarted
        }
    }

    func finish(_ result: Answer) {
        let waiters = state.withLockedValue { state in
            state.result = result
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: result) }
    }

    /// The lookup's result, or `nil` when `deadline` comes first.
    func result(until deadline: ContinuousClock.Instant?) async throws -> Answer? {
        if let result = state.withLockedValue({ $0.result }) { return result }
        guard let deadline else { return try await result() }
        if deadline <= .now { return nil }
        // Both children run where the caller runs (they inherit its executor preference); the one
        // that ends first cancels the other, and the group waits for it.
        return try await withThrowingTaskGroup(of: Answer?.self) { group in
            group.addTask { try await self.result() }
            group.addTask {
                try await Task.sleep(until: deadline, clock: .continuous)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }

    private func result() async throws -> Answer {
        let id = state.withLockedValue { state in
            state.nextID += 1
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let outcome = state.withLockedValue {
                    state -> Result<Answer, any Error>? in
                    if let result = state.result { return .success(result) }
                    if state.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state in
                guard let waiter = state.waiters.removeValue(forKey: id) else {
                    if state.result == nil { state.cancelled.insert(id) }
                    return nil as CheckedContinuation<Answer, any Error>?
                }
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
