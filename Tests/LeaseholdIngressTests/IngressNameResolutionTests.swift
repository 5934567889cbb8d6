import Foundation
import LeaseholdLocalStack
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// A `leasehold ingress` whose Redis is reached by name keeps answering while the name server is
/// silent: looking the name up again on every reconnect must not stall the process's reactor
/// (which runs `/healthz` and every booking).
///
/// The ingress runs in a mount namespace of its own (`unshare --mount`) with `/etc/hosts` and
/// `/etc/resolv.conf` bind-mounted from files the test writes: the name first resolves through the
/// hosts file, then the test removes it, so lookups go to a name server on a loopback UDP socket
/// the test holds open and never answers. Needs root and `unshare`; skipped without them.
@Suite(
    .enabled(if: IntegrationEnvironment.isAvailable),
    .enabled(if: MountNamespace.isAvailable, "needs root and a working `unshare --mount` (bind-mounts resolv.conf)"),
    .timeLimit(.minutes(2)))
struct IngressNameResolutionTests {
    static let name = "leasehold-redis-under-test"

    /// What a test body gets: the ingress's client and process, its Redis, the hosts file it sees.
    struct Jail {
        let http: BookingClient
        let ingress: ChildProcess
        let server: PrivateRedisServer
        let nameServer: SilentNameServer
        let hosts: URL
    }

    /// Starts a Redis of its own and a `leasehold ingress` reaching it as ``name``, in a mount
    /// namespace whose hosts file holds `hostsFile` and whose only name server is silent; waits
    /// for `/healthz`, runs `body`, and stops everything. The default `resolverOptions`, one attempt
    /// of 5 s per query, make a stall far longer than anything a loaded machine adds.
    func withJailedIngress(
        hostsFile: String, resolverOptions: String = "timeout:5 attempts:1", _ body: (Jail) async throws -> Void
    ) async throws {
        let server = try await PrivateRedisServer()
        let nameServer = try SilentNameServer()
        let directory = try makeTemporaryDirectory("dns")
        let hosts = directory.appendingPathComponent("hosts")
        let resolv = directory.appendingPathComponent("resolv.conf")
        try rewrite(hosts, hostsFile)
        try rewrite(resolv, "nameserver \(nameServer.address)\noptions \(resolverOptions)\n")

        let port = try freeLoopbackPort()
        var environment = ProcessInfo.processInfo.environment
        environment["REDIS_URL"] = "redis://\(Self.name):\(server.port)/0"
        environment["LEASEHOLD_REDIS_PREFIX"] = IntegrationEnvironment.uniqueName("lh_dns") + ":"
        environment["LEASEHOLD_API_TOKEN"] = ProcessStack.apiToken
        environment["LOG_LEVEL"] = "info"
        let script = #"mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@""#
        let ingress = try ChildProcess(
            name: "ingress-dns", executable: URL(fileURLWithPath: MountNamespace.unshare),
            arguments: [
                "--mount", "/bin/sh", "-c", script, "sh", hosts.path, resolv.path, LeaseholdExecutable.url.path,
                "ingress", "--host", "127.0.0.1", "--port", String(port),
            ],
            log: directory.appendingPathComponent("ingress.log"), environment: environment)
        let http = BookingClient(baseURL: "http://127.0.0.1:\(port)", connections: 4)
        let outcome = await RedisAsyncFixtureOutcome.of {
            let started = ContinuousClock.now + .seconds(30)
            while !(await http.isHealthy()) {
                guard ingress.isRunning, ContinuousClock.now < started else {
                    throw TestSetupError("ingress did not start:\n\(ingress.output)")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            try await body(Jail(http: http, ingress: ingress, server: server, nameServer: nameServer, hosts: hosts))
            #expect(ingress.isRunning, "ingress exited:\n\(ingress.output)")
            // The lookups did reach the silent name server: the test saw what it meant to.
            #expect(nameServer.queriesReceived() > 0, "no query reached the name server")
        }
        await http.shutdown()
        await ingress.stop(signal: SIGKILL, timeout: .seconds(10))
        await server.kill()
        nameServer.close()
        if case .failure = outcome { print("ingress log:\n\(ingress.output)") }
        try? FileManager.default.removeItem(at: directory)
        try outcome.get()
    }

    @Test("silent name server while Redis connections are killed: /healthz and bookings answer within 100 ms")
    func silentNameServerDoesNotStallTheReactor() async throws {
        try await withJailedIngress(hostsFile: "127.0.0.1 localhost\n127.0.0.1 \(Self.name)\n") { jail in
            let http = jail.http
            let run = IntegrationEnvironment.uniqueName("dns")
            // Connected by the name, through the hosts file.
            #expect(try await http.book(requestID: "\(run)-warm", userID: 1, slotID: 1) == 202)

            // From now on the name is only in a name server that never answers.
            try rewrite(jail.hosts, "127.0.0.1 localhost\n")
            let killer = RedisClient(configuration: jail.server.configuration(commandTimeout: .seconds(5)))
            defer { killer.close() }
            var healthz: [Duration] = []
            var bookings: [(status: Int, took: Duration)] = []
            let clock = ContinuousClock()
            let end = clock.now + .seconds(5)
            var round = 0
            while clock.now < end {
                round += 1
                // Every normal client but this one: the ingress's connection, so the next booking
                // reconnects, and looks the name up again.
                _ = try await killer.send("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                async let booking: (Int, Duration) = {
                    let begun = clock.now
                    let status = (try? await http.book(requestID: "\(run)-\(round)", userID: 2, slotID: 2)) ?? 0
                    return (status, clock.now - begun)
                }()
                // Asked while the booking reconnects (a lookup waits 25 ms for a fresh answer).
                try await Task.sleep(for: .milliseconds(10))
                async let health: Duration = clock.measure { _ = await http.isHealthy() }
                let (healthTook, booked) = await (health, booking)
                healthz.append(healthTook)
                bookings.append((booked.0, booked.1))
                try await Task.sleep(for: .milliseconds(50))
            }
            let slowestHealthz = healthz.max() ?? .zero
            let slowestBooking = bookings.map(\.took).max() ?? .zero
            print(
                "name resolution stall: \(round) rounds, slowest /healthz \(slowestHealthz), slowest booking \(slowestBooking), statuses \(Set(bookings.map(\.status)).sorted())"
            )
            // Alone this measures 5–36 ms; a lookup on the reactor stalls both for the resolver's
            // 5 s per query. The bound leaves room for the whole suite running on two cores.
            #expect(slowestHealthz < .seconds(2), "/healthz took \(slowestHealthz) during a reconnect")
            #expect(slowestBooking < .seconds(2), "a booking took \(slowestBooking) during a reconnect")
            // Answered, 202 or a prompt 503: never a request that got no answer.
            #expect(bookings.allSatisfy { $0.status == 202 || $0.status == 503 }, "\(bookings.map(\.status))")
        }
    }

    @Test("a name never resolved: the booking gets 503 after the connect timeout, /healthz answers meanwhile")
    func nameNeverResolvedTimesOut() async throws {
        // glibc's own defaults (5 s × 2 attempts): the lookup outlasts the connect timeout.
        try await withJailedIngress(hostsFile: "127.0.0.1 localhost\n", resolverOptions: "timeout:5 attempts:2") {
            jail in
            let http = jail.http
            let clock = ContinuousClock()
            let begun = clock.now
            async let booking = http.bookAnswer(
                requestID: IntegrationEnvironment.uniqueName("dns"), userID: 3, slotID: 3)
            // While the booking waits for the name, the process answers.
            var healthz: [Duration] = []
            while clock.now - begun < .seconds(4) {
                healthz.append(await clock.measure { #expect(await http.isHealthy()) })
                try await Task.sleep(for: .milliseconds(50))
            }
            let answer = try await booking
            let took = clock.now - begun
            let slowestHealthz = healthz.max() ?? .zero
            print("name never resolved: booking \(answer.status) after \(took), slowest /healthz \(slowestHealthz)")
            #expect(answer.status == 503)
            #expect(answer.retryAfter != nil)
            // The Redis connect timeout (5 s), not the resolver's own 20 s.
            #expect(took >= .seconds(4) && took < .seconds(8), "the booking took \(took)")
            // Alone 7–10 ms; on the reactor the lookup held it for 20 s (the client gives up at 5 s).
            #expect(slowestHealthz < .seconds(2), "/healthz took \(slowestHealthz) while the name hung")
            let log = jail.ingress.output
            #expect(
                log.contains(Self.name) && log.contains("name resolution timed out"),
                "the ingress log does not name the host and the timeout:\n\(log.suffix(2000))")
        }
    }

    /// Replaces the contents of `file` in place (same inode: it is bind-mounted).
    private func rewrite(_ file: URL, _ text: String) throws {
        let descriptor = open(file.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw TestSetupError("open \(file.path): errno \(errno)") }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        guard write(descriptor, bytes, bytes.count) == bytes.count else {
            throw TestSetupError("write \(file.path): errno \(errno)")
        }
    }
}

/// Whether this process can run a child in a mount namespace of its own with bind mounts.
enum MountNamespace {
    static let unshare = "/usr/bin/unshare"

    static let isAvailable: Bool = {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: unshare) else { return false }
        // One trial run: a container may refuse the namespace or the mount.
        let script = "mount --bind /etc/hosts /etc/hosts"
        let arguments = [unshare, "--mount", "/bin/sh", "-c", script]
        var pid: pid_t = 0
        var argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        guard posix_spawn(&pid, unshare, &actions, nil, &argv, environ) == 0 else { return false }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status == 0
    }()
}

/// A UDP socket on port 53 of a random loopback address that answers nothing: a name server that
/// has gone silent.
final class SilentNameServer: Sendable {
    let address: String
    private let descriptor: Int32

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestSetupError("socket: errno \(errno)") }
        for _ in 0..<20 {
            let address = "127.\(Int.random(in: 1...254)).\(Int.random(in: 0...255)).\(Int.random(in: 1...254))"
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = in_port_t(53).bigEndian
            inet_pton(AF_INET, address, &socketAddress.sin_addr)
            let bound = withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if bound == 0 {
                self.address = address
                self.descriptor = descriptor
                return
            }
        }
        _ = Foundation.close(descriptor)
        throw TestSetupError("could not bind a UDP socket to port 53 of a loopback address: errno \(errno)")
    }

    /// The queries that arrived so far (read and dropped; never answered).
    func queriesReceived() -> Int {
        var count = 0
        var buffer = [UInt8](repeating: 0, count: 1500)
        while recv(descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 { count += 1 }
        return count
    }

    func close() { _ = Foundation.close(descriptor) }
}
