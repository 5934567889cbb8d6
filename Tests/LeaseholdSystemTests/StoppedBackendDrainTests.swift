import Foundation
import LeaseholdPostgres
import LeaseholdTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 25: a cancelled statement whose backend never answers must not hold a drain up.
extension SystemTests {
    @Suite("A drain while the backend is stopped")
    struct StoppedBackendDrainTests {
        static let fastSupervisor = [
            "LEASEHOLD_LEASE_TTL_MS": "1000", "LEASEHOLD_VISIBILITY_TIMEOUT_MS": "2000",
            "LEASEHOLD_SUPERVISOR_INTERVAL_MS": "100",
            "LEASEHOLD_RETRY_BASE_MS": "100", "LEASEHOLD_RETRY_MAX_DELAY_MS": "300",
        ]

        /// The backend serving a worker's booking is stopped (SIGSTOP) mid-transaction, then the
        /// worker gets SIGTERM with a 2 s drain: the cancel reaches a backend that cannot act on
        /// it, and the worker must still exit within the drain and a short grace, leaving the
        /// entry pending. Once the backend runs again (SIGCONT), a restarted worker books it exactly
        /// once.
        @Test func sigtermWhileTheBackendIsStoppedExitsOnTimeAndLosesNothing() async throws {
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1, workerEnvironment: ["LEASEHOLD_DRAIN_TIMEOUT_MS": "2000"])
            let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
            let lock = try await SlotLock(stack, slot: slot)
            #expect(try await stack.book(requestID: "stopped-1", userID: 1, slotID: slot).status == 202)
            try await waitUntil { try await SystemTests.blockedWorkerTransactions(stack) == 1 }
            let backend = try await stack.postgres.query(
                """
                SELECT pid FROM pg_stat_activity
                WHERE datname = \(stack.database.name) AND application_name = 'leasehold-worker'
                  AND wait_event_type = 'Lock'
                """
            ).single().decode(Int32.self, at: 0)

            #expect(kill(backend, SIGSTOP) == 0)
            var continued = false
            defer { if !continued { kill(backend, SIGCONT) } }
            try await lock.release()

            let worker = try #require(stack.workers.first)
            let clock = ContinuousClock()
            let start = clock.now
            worker.send(SIGTERM)
            let exited = await worker.waitForExit(timeout: .seconds(30))
            let elapsed = clock.now - start
            #expect(exited, "the worker exits although its backend never answers")
            #expect(elapsed < .seconds(4), "within the 2 s drain + 2 s: \(elapsed)")
            #expect(worker.exitStatus == 0, "\(worker.output)")
            #expect(try await stack.pendingCount("bookings") == 1, "left pending")
            #expect(try await stack.outcome(of: "stopped-1", timeout: .zero) == "pending")

            // The backend runs again; a new worker (and a supervisor to reclaim the entry) books it once.
            kill(backend, SIGCONT)
            continued = true
            try stack.startSupervisor(name: "supervisor-0", environment: Self.fastSupervisor)
            try stack.startWorker(name: "worker-1")
            #expect(try await stack.outcome(of: "stopped-1", timeout: .seconds(60)) == "booked")
            try await waitUntil { try await stack.pendingCount("bookings") == 0 }
            #expect(try await Self.count("inbox", stack) == 1)
            #expect(try await Self.count("interviews", stack) == 1)
            #expect(try await Self.count("dead_letters", stack) == 0)
            await stack.shutdown()
        }

        static func count(_ table: String, _ stack: ProcessStack) async throws -> Int64 {
            try await stack.postgres.query("SELECT count(*) FROM \(unescaped: table)").single().decode(
                Int64.self, at: 0)
        }
    }
}
