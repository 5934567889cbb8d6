import Foundation
import LeaseholdLocalStack
import LeaseholdTesting
import Testing

/// ``RoleProcesses`` with real child processes (`/bin/sh` scripts standing in for the roles).
@Suite struct RoleProcessesTests {
    let directory: URL
    let roles: RoleProcesses

    init() throws {
        directory = try makeTemporaryDirectory("role-processes")
        roles = RoleProcesses(
            executable: URL(fileURLWithPath: "/bin/sh"), environment: ProcessInfo.processInfo.environment)
    }

    /// A shell running `script` under `name`, logging to `<name>.log`.
    func spec(_ name: String, _ script: String, environment: [String: String] = [:]) -> RoleProcesses.Spec {
        .init(
            name: name, arguments: ["-c", script], log: directory.appendingPathComponent("\(name).log"),
            environment: environment)
    }

    @Test func startsNamesAndStopsEveryProcessWithItsStatus() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        // A role's own environment is set over the shared one.
        try roles.start(spec("worker-0", "echo \"started $ROLE\"; exec sleep 60", environment: ["ROLE": "w0"]))
        try roles.start(spec("worker-1", "echo \"started $ROLE\"; exec sleep 60", environment: ["ROLE": "w1"]))
        // A fresh log begins anew; without one, what is there is kept.
        try Data("stale\n".utf8).write(to: directory.appendingPathComponent("ingress-0.log"))
        try roles.start(spec("ingress-0", "echo started; exec sleep 60"), freshLog: true)
        #expect(roles.all.map(\.name) == ["worker-0", "worker-1", "ingress-0"])
        #expect(roles.named("worker-").map(\.name) == ["worker-0", "worker-1"])
        #expect(roles.named("ingress").map(\.name) == ["ingress-0"])
        #expect(roles.named("supervisor").isEmpty)
        try await roles.waitForOutput("started", from: roles.all)
        #expect(roles.named("worker-1").first?.output == "started w1\n")
        #expect(roles.named("ingress-0").first?.output == "started\n")
        #expect(roles.exited.isEmpty)
        try roles.failIfAnyExited()

        let statuses = await roles.stopAll()
        #expect(statuses == ["worker-0": 128 + SIGTERM, "worker-1": 128 + SIGTERM, "ingress-0": 128 + SIGTERM])
        #expect(roles.all.allSatisfy { !$0.isRunning })
    }

    /// A process that ignores SIGTERM is killed once the bound has passed.
    @Test func aProcessIgnoringSIGTERMIsKilledAfterTheBound() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        // `exec` keeps the ignored disposition: the sleep itself ignores SIGTERM.
        try roles.start(spec("stubborn", "trap '' TERM; echo ready; exec sleep 60"))
        try roles.start(spec("polite", "echo ready; exec sleep 60"))
        try await roles.waitForOutput("ready", from: roles.all)

        let statuses = await roles.stopAll(timeout: .seconds(1))
        #expect(statuses == ["stubborn": 128 + SIGKILL, "polite": 128 + SIGTERM])
    }

    /// An exited process is reported, fails the waits, and starts again under its name where it
    /// was (its log appended to); a running name cannot be started twice.
    @Test func anExitedProcessIsReportedAndRestarted() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try roles.start(spec("supervisor-0", "echo \"up $$\"; exec sleep 60"))
        try await roles.waitForOutput("up ", from: roles.all)
        let first = try roles.start(spec("worker-0", "echo bye; exit 3"))
        try roles.start(spec("notifier-0", "exec sleep 60"))
        #expect(await first.waitForExit(timeout: .seconds(30)))
        #expect(roles.exited.map(\.name) == ["worker-0"])
        #expect(throws: RoleProcessError.self) { try roles.failIfAnyExited() }
        do {
            try roles.failIfAnyExited()
        } catch let RoleProcessError.exitedEarly(name, status, log, tail) {
            #expect(name == "worker-0")
            #expect(status == 3)
            #expect(log == directory.appendingPathComponent("worker-0.log"))
            #expect(tail == "bye\n")
        }
        // Waiting for an answer ends at once when a process has exited, whatever the deadline.
        await #expect(throws: RoleProcessError.self) {
            try await roles.waitUntilAnswering(["http://127.0.0.1:1/healthz"], until: .now + .seconds(3600)) { _ in
                throw CancellationError()
            }
        }
        await #expect(throws: RoleProcessError.self) {
            try await roles.waitForOutput("never written", from: roles.named("notifier"), until: .now + .seconds(3600))
        }

        #expect(throws: RoleProcessError.alreadyRunning(name: "supervisor-0")) {
            try roles.start(spec("supervisor-0", "exec sleep 60"), freshLog: true)
        }
        #expect(roles.named("supervisor-0").first?.output.hasPrefix("up ") == true, "the running one's log is kept")
        #expect(try roles.restart("nobody") == nil)
        let second = try #require(try roles.restart("worker-0"))
        #expect(second.pid != first.pid)
        #expect(roles.all.map(\.name) == ["supervisor-0", "worker-0", "notifier-0"])
        #expect(roles.all[1].pid == second.pid)
        #expect(await second.waitForExit(timeout: .seconds(30)))
        #expect(second.output == "bye\nbye\n", "a restart appends to the log")

        let statuses = await roles.stopAll()
        #expect(statuses == ["supervisor-0": 128 + SIGTERM, "worker-0": 3, "notifier-0": 128 + SIGTERM])
        // Nothing starts once the processes are being stopped.
        #expect(throws: RoleProcessError.stopping(name: "worker-0")) { try roles.restart("worker-0") }
        #expect(roles.exited.count == 3)
    }

    /// The wait for health URLs asks each URL until it answers 200, and gives up at the deadline
    /// when nothing has exited.
    @Test func waitsUntilEveryURLAnswers() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try roles.start(spec("ingress-0", "exec sleep 60"))
        var asked: [String] = []
        try await roles.waitUntilAnswering(["http://a/healthz", "http://b/healthz"]) { url in
            asked.append(url)
            return asked.count < 3 ? 503 : 200
        }
        #expect(asked == ["http://a/healthz", "http://a/healthz", "http://a/healthz", "http://b/healthz"])

        await #expect(throws: RoleProcessError.neverAnswered(url: "http://c/readyz")) {
            try await roles.waitUntilAnswering(["http://c/readyz"], until: .now) { _ in 503 }
        }
        await roles.stopAll()
    }
}
