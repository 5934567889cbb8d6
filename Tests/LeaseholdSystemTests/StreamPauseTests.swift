import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdTesting
import Testing

extension SystemTests {
    /// `leasehold streams pause|resume` with real processes: while `bookings` is paused, ingress
    /// accepts, no worker (not even one started after the pause) processes any of it, Telegram
    /// callbacks go on; after resume every booking is processed once; each step is audited.
    @Suite("Pausing and resuming a stream")
    struct StreamPauseTests {
        private func inboxCount(_ stack: ProcessStack, _ pattern: String) async throws -> Int64 {
            try await stack.postgres.query("SELECT count(*) FROM inbox WHERE message_key ~ \(pattern)").single()
                .decode(Int64.self, at: 0)
        }

        @Test func aPausedStreamIsHeldUntilResumedAndNothingIsLost() async throws {
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1, supervisors: 1,
                supervisorEnvironment: [
                    "LEASEHOLD_VISIBILITY_TIMEOUT_MS": "1000", "LEASEHOLD_SUPERVISOR_INTERVAL_MS": "100",
                ])
            let slots = try await stack.seed(slots: 10, users: 21)

            let pause = try await LeaseholdExecutable.run(
                ["streams", "pause", "bookings", "--reason", "INC-7 migration", "--by", "ann"],
                in: stack.directory, environment: stack.environment)
            #expect(pause.status == 0, "\(pause.output)")
            let list = try await LeaseholdExecutable.run(
                ["streams", "list"], in: stack.directory, environment: stack.environment)
            #expect(list.output.contains("by ann: INC-7 migration"), "\(list.output)")

            // Ingress keeps accepting; a worker started after the pause claims nothing either.
            for (index, slot) in slots.enumerated() {
                let answer = try await stack.book(requestID: "p\(index)", userID: Int64(index + 1), slotID: slot)
                #expect(answer.status == 202)
            }
            _ = try stack.startWorker(name: "worker-late")
            // Another stream goes on meanwhile.
            #expect(
                try await stack.telegramCallback(updateID: 9_001, userID: 20, data: "book:\(slots[0])").status == 200)
            try await waitUntil(timeout: .seconds(30)) { try await inboxCount(stack, "^tg:9001$") == 1 }
            // Two supervisor passes and several worker reads later, still nothing of bookings.
            try await Task.sleep(for: .seconds(2))
            #expect(try await inboxCount(stack, "^api:p") == 0)
            #expect(try await stack.streamLength("bookings") == 10)
            #expect(try await stack.pendingCount("bookings") == 0, "no entry of the paused stream was claimed")
            let status = try await LeaseholdExecutable.run(
                ["status"], in: stack.directory, environment: stack.environment)
            #expect(status.output.contains("by ann: INC-7 migration"), "\(status.output)")

            let resume = try await LeaseholdExecutable.run(
                ["streams", "resume", "bookings", "--by", "bob"], in: stack.directory, environment: stack.environment)
            #expect(resume.status == 0 && resume.output.contains("resumed bookings"), "\(resume.output)")
            try await waitUntil(timeout: .seconds(60)) { try await inboxCount(stack, "^api:p") == 10 }
            // In order, once each: the Telegram user took slot 0 while bookings waited.
            #expect(try await stack.outcome(of: "p0") == "slot_taken")
            for index in 1..<10 { #expect(try await stack.outcome(of: "p\(index)") == "booked") }
            let audit = try await stack.postgres.query(
                "SELECT actor, action, scope FROM console_actions ORDER BY id"
            ).map { try $0.decode(String.self, String.self, String.self) }
            #expect(audit.map(\.0) == ["ann", "bob"])
            #expect(audit.map(\.1) == ["pause", "resume"])
            #expect(audit.first?.2 == "bookings: INC-7 migration")

            let bad = try await LeaseholdExecutable.run(
                ["streams", "pause", "payments", "--reason", "x"], in: stack.directory,
                environment: stack.environment)
            #expect(bad.status != 0 && bad.output.contains("payments is not a stream"), "\(bad.output)")
            #expect(
                try await stack.postgres.query("SELECT count(*) FROM console_actions").single()
                    .decode(Int64.self, at: 0) == 2, "a refused pause records nothing")
            await stack.shutdown()
        }

        /// The pause is kept in Redis, not in any process: every role stopped (SIGTERM, a worker
        /// SIGKILLed) and started again, the stream is still held, what arrived before and after
        /// waits; the resume processes all of it once. The roles' graceful stops exit 0.
        @Test func aPauseOutlivesARestartOfEveryRole() async throws {
            let supervisorEnvironment = [
                "LEASEHOLD_VISIBILITY_TIMEOUT_MS": "1000", "LEASEHOLD_SUPERVISOR_INTERVAL_MS": "100",
            ]
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 2, supervisors: 1, supervisorEnvironment: supervisorEnvironment)
            let slots = try await stack.seed(slots: 6, users: 7)
            let pause = try await LeaseholdExecutable.run(
                ["streams", "pause", "bookings", "--reason", "restart drill", "--by", "ann"],
                in: stack.directory, environment: stack.environment)
            #expect(pause.status == 0, "\(pause.output)")
            for index in 0..<3 {
                let answer = try await stack.book(
                    requestID: "r\(index)", userID: Int64(index + 1), slotID: slots[index])
                #expect(answer.status == 202)
            }

            // Every role goes: one worker killed, the rest stopped gracefully.
            let (killed, stopped) = (stack.workers[0], stack.workers[1])
            killed.send(SIGKILL)
            #expect(await killed.waitForExit(timeout: .seconds(10)))
            for process in [stopped] + stack.supervisors + stack.ingresses {
                await process.stop(signal: SIGTERM, timeout: .seconds(30))
                #expect(process.exitStatus == 0, "\(process.name) exited \(String(describing: process.exitStatus))")
            }
            // And every role comes back.
            try stack.startIngress(index: 0, port: stack.ingressPorts[0])
            try await stack.waitForIngress(0)
            try stack.startWorker(name: "worker-again-0")
            try stack.startWorker(name: "worker-again-1")
            try stack.startSupervisor(name: "supervisor-again", environment: supervisorEnvironment)
            for index in 3..<6 {
                let answer = try await stack.book(
                    requestID: "r\(index)", userID: Int64(index + 1), slotID: slots[index])
                #expect(answer.status == 202)
            }
            // Several worker reads and supervisor passes later, nothing of bookings was claimed.
            try await Task.sleep(for: .seconds(2))
            #expect(try await inboxCount(stack, "^api:r") == 0)
            #expect(try await stack.streamLength("bookings") == 6)
            #expect(try await stack.pendingCount("bookings") == 0, "no entry of the paused stream was claimed")
            let list = try await LeaseholdExecutable.run(
                ["streams", "list"], in: stack.directory, environment: stack.environment)
            #expect(list.output.contains("by ann: restart drill"), "\(list.output)")

            let resume = try await LeaseholdExecutable.run(
                ["streams", "resume", "bookings", "--by", "bob"], in: stack.directory, environment: stack.environment)
            #expect(resume.status == 0, "\(resume.output)")
            try await waitUntil(timeout: .seconds(60), "the six bookings processed") {
                try await inboxCount(stack, "^api:r") == 6
            }
            for index in 0..<6 { #expect(try await stack.outcome(of: "r\(index)") == "booked") }
            await stack.shutdown()
        }
    }
}
