import Foundation
import LeaseholdLocalStack
import LeaseholdTesting
import Testing

/// A role whose standard error nobody reads (a stalled log collector: the pipe fills at 64 KiB)
/// goes on answering; the lines that do not fit its log buffer are dropped and counted, and
/// reported once standard error takes writes again. Before the log buffer, an ingress logging a
/// warning per booking stopped answering bookings and /healthz after about 270 lines.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(2)))
struct BlockedStandardErrorTests {
    @Test func anIngressWhoseStandardErrorIsBlockedKeepsAnswering() async throws {
        let directory = try makeTemporaryDirectory("lh-blocked-stderr")
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("stderr")
        try #require(mkfifo(fifo.path, 0o600) == 0)
        // Held open and not read until the end: the role's writes fill the pipe and then block.
        let reader = open(fifo.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        try #require(reader >= 0)
        defer { close(reader) }

        let port = try LowPorts.free()
        // Nothing listens there: every booking fails to reach Redis and logs a warning.
        let deadRedis = try LowPorts.free()
        var environment = ProcessInfo.processInfo.environment
        environment.merge(
            [
                "REDIS_URL": "redis://127.0.0.1:\(deadRedis)/0", "LEASEHOLD_API_TOKEN": ProcessStack.apiToken,
                "LEASEHOLD_INGRESS_HOST": "127.0.0.1", "LEASEHOLD_INGRESS_PORT": String(port),
                "LEASEHOLD_LOG_BUFFER_BYTES": "16384",
            ]
        ) { $1 }
        let ingress = try ChildProcess(
            name: "ingress", executable: LeaseholdExecutable.url, arguments: ["ingress"], log: fifo,
            environment: environment)
        defer { ingress.send(SIGKILL) }
        let http = BookingClient(baseURL: "http://127.0.0.1:\(port)", connections: 32)
        // The client is shut down on every path (its deinit traps otherwise).
        var failure: (any Error)?
        do {
            try await waitUntil(timeout: .seconds(30)) { await http.isHealthy() }
            let run = IntegrationEnvironment.uniqueName("stderr")
            let clock = ContinuousClock()
            // 1,000 bookings, each a warning of ~300 bytes: five times what the pipe and the
            // buffer hold together.
            for round in 0..<10 {
                let statuses = await withTaskGroup(of: Int.self) { group in
                    for index in 0..<100 {
                        group.addTask {
                            (try? await http.book(requestID: "\(run)-\(round)-\(index)", userID: 1, slotID: 1)) ?? 0
                        }
                    }
                    return await group.reduce(into: [Int]()) { $0.append($1) }
                }
                #expect(statuses.allSatisfy { $0 == 503 }, "round \(round): \(Set(statuses))")
                let started = clock.now
                #expect(await http.isHealthy(), "round \(round): /healthz")
                // Alone a few ms; blocked on standard error it never answers (the client gives up
                // at 5 s). The bound leaves room for the whole suite running on two cores.
                #expect(clock.now - started < .seconds(3), "round \(round): /healthz took \(clock.now - started)")
            }
            // Now read: the writer gets through, and says how many lines it dropped.
            var text = ""
            var buffer = [UInt8](repeating: 0, count: 65_536)
            let deadline = clock.now + .seconds(20)
            while !text.contains("log lines dropped"), clock.now < deadline {
                let count = read(reader, &buffer, buffer.count)
                if count > 0 {
                    text += String(decoding: buffer.prefix(count), as: UTF8.self)
                } else {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            let report = text.split(separator: "\n").first { $0.contains("log lines dropped") }
            let dropped = report.flatMap { line in
                line.split(separator: " ").first { $0.hasPrefix("dropped=") }.flatMap { Int($0.dropFirst(8)) }
            }
            #expect((dropped ?? 0) > 0, "no report of dropped lines in what the ingress wrote")
        } catch {
            failure = error
        }
        await http.shutdown()
        if let failure { throw failure }
    }
}
