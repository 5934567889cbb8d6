import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdTesting
import Testing

/// Real signals against real worker processes: crash (SIGKILL) and graceful shutdown (SIGTERM).
extension SystemTests {
    @Suite("Worker crash and shutdown")
    struct WorkerLifecycleTests {
        /// A booking is one statement (`leasehold_book`) sent in one round trip, so when the worker
        /// dies the server already holds the whole transaction: it runs to its end once the lock it
        /// waits on is free, all of it or (had it failed) none of it — never half. The worker never
        /// acknowledged, so the entry stays pending; its redelivery after the supervisor's reclaim is
        /// a no-op (SupervisorRecoveryTests: kill -9 of a worker holding fifty entries).
        @Test func killDashNineMidTransactionWritesAllOrNothingAndLeavesTheEntryPending() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 1)
            let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
            let lock = try await SlotLock(stack, slot: slot)
            #expect(try await stack.book(requestID: "crash-1", userID: 1, slotID: slot).status == 202)
            try await waitUntil { try await SystemTests.blockedWorkerTransactions(stack) == 1 }

            let worker = try #require(stack.workers.first)
            worker.send(SIGKILL)
            #expect(await worker.waitForExit(timeout: .seconds(10)))
            try await lock.release()

            // The dead worker's backend finishes the statement it was given and goes away.
            try await waitUntil {
                try await stack.postgres.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = \(stack.database.name) AND application_name = 'leasehold-worker'"
                ).single().decode(Int64.self, at: 0) == 0
            }
            // All of the transaction: the inbox row with its final outcome and the interview, together.
            let inbox = try await stack.postgres.query(
                "SELECT count(*) FROM inbox WHERE outcome = 'booked'"
            ).single().decode(Int64.self, at: 0)
            let anyInbox = try await stack.postgres.query("SELECT count(*) FROM inbox").single().decode(
                Int64.self, at: 0)
            let interviews = try await stack.postgres.query("SELECT count(*) FROM interviews").single().decode(
                Int64.self, at: 0)
            #expect(inbox == 1 && anyInbox == 1 && interviews == 1, "\(inbox) \(anyInbox) \(interviews)")

            // The entry is still pending under the dead consumer, never acknowledged.
            let pending = try await stack.redis.send("XPENDING", stack.stream("bookings"), "workers", "-", "+", 10)
            let entries = try #require(pending.array)
            #expect(entries.count == 1)
            #expect(entries.first?.array?[1].string == "worker-0")
            #expect(try await stack.outcome(of: "crash-1", timeout: .zero) == "pending")
            await stack.shutdown()
        }

        /// Before its first read the worker opens its connections and, on each, books a throwaway
        /// slot for a throwaway user and applies a throwaway payment's success, in transactions it
        /// rolls back: the backend compiles `leasehold_book` and `leasehold_apply_payment` and plans
        /// their statements then, not under the first burst.
        @Test func theWorkerWarmsEachConnectionUpBeforeItsFirstReadAndLeavesNothingBehind() async throws {
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1, workerEnvironment: ["LEASEHOLD_WORKER_CONCURRENCY": "4"])
            let worker = try #require(stack.workers.first)
            try await waitUntil { worker.output.contains("worker started") }
            #expect(!worker.output.contains("warming up connections failed"), "\(worker.output)")

            func count(_ table: String) async throws -> Int64 {
                try await stack.postgres.query("SELECT count(*) FROM \(unescaped: table)").single().decode(
                    Int64.self, at: 0)
            }
            // Four bookings and four payments ran, to the end (each spent one value of the
            // identities of the rows it inserted: the interview, the subscription it created, the
            // bot's replies), and none of their rows stayed.
            for (sequence, spent) in [
                ("interviews_id_seq", 4), ("payments_id_seq", 4), ("subscriptions_id_seq", 4), ("outbox_id_seq", 8),
            ] {
                let last = try await stack.postgres.query(
                    "SELECT pg_sequence_last_value(\(sequence))"
                ).single().decode(Int64?.self, at: 0)
                #expect(last == Int64(spent), "\(sequence): one warm-up per connection")
            }
            for table in [
                "users", "time_slots", "interviews", "inbox", "outbox", "plans", "payments", "subscriptions",
                "webhook_log",
            ] {
                #expect(try await count(table) == 0, "\(table) is empty again")
            }

            // The first real booking after it goes through as usual.
            let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
            #expect(try await stack.book(requestID: "after-warm-up", userID: 1, slotID: slot).status == 202)
            #expect(try await stack.outcome(of: "after-warm-up") == "booked")
            await stack.shutdown()
        }

        /// A warm-up that cannot run (here the payment function is missing, as with a schema
        /// behind the binary) costs one warning line per kind, and the worker starts and works.
        @Test func aFailingWarmUpIsOneWarningAndTheWorkerStartsAnyway() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 0)
            try await stack.postgres.execute("DROP FUNCTION leasehold_apply_payment")
            let worker = try stack.startWorker(name: "worker-0", environment: ["LEASEHOLD_WORKER_CONCURRENCY": "4"])
            try await waitUntil { worker.output.contains("worker started") }
            let warnings = worker.output.split(separator: "\n").filter {
                $0.contains("warming up connections failed")
            }
            #expect(warnings.count == 1, "\(worker.output)")
            #expect(warnings.first?.contains("kind=yookassa.notification") == true)
            #expect(warnings.first?.contains("connections=4") == true)
            #expect(warnings.first?.contains("leasehold_apply_payment") == true, "the error names what failed")

            let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
            #expect(try await stack.book(requestID: "despite-warm-up", userID: 1, slotID: slot).status == 202)
            #expect(try await stack.outcome(of: "despite-warm-up") == "booked")
            await stack.shutdown()
        }

        /// `/readyz` says whether the worker can take work: 503 while its warm-up waits (here on a
        /// lock the test holds on `time_slots`), 200 once it reads.
        @Test func readyzAnswersOnlyOnceTheWorkerIsWarmAndReads() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 0)
            let lock = try await PostgresSession.open(stack.database.configuration)
            try await lock.simpleQuery("BEGIN")
            try await lock.simpleQuery("LOCK TABLE time_slots IN ACCESS EXCLUSIVE MODE")
            let port = try freeLoopbackPort()
            let worker = try stack.startWorker(
                name: "worker-0",
                environment: [
                    "LEASEHOLD_WORKER_CONCURRENCY": "2", "LEASEHOLD_LOCK_TIMEOUT_MS": "120000",
                    "LEASEHOLD_METRICS_PORT": String(port), "LEASEHOLD_METRICS_HOST": "127.0.0.1",
                ])
            let base = "http://127.0.0.1:\(port)"
            try await waitUntil { (try? await stack.fetch(base + "/healthz"))?.status == 200 }
            // Up, but not ready: the warm-up waits for the lock.
            try await waitUntil { try await SystemTests.blockedWorkerTransactions(stack) >= 1 }
            #expect(try await stack.fetch(base + "/readyz").status == 503)
            #expect(!worker.output.contains("worker started"))

            try await lock.simpleQuery("ROLLBACK")
            try await waitUntil { (try? await stack.fetch(base + "/readyz"))?.status == 200 }
            #expect(worker.output.contains("worker started"))
            await stack.shutdown()
        }

        @Test func sigtermDrainsInFlightWorkWithinTheTimeoutAndExitsZero() async throws {
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1, workerEnvironment: ["LEASEHOLD_DRAIN_TIMEOUT_MS": "15000"])
            let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
            let lock = try await SlotLock(stack, slot: slot)
            #expect(try await stack.book(requestID: "drain-1", userID: 1, slotID: slot).status == 202)
            try await waitUntil { try await SystemTests.blockedWorkerTransactions(stack) == 1 }

            let worker = try #require(stack.workers.first)
            worker.send(SIGTERM)
            try await Task.sleep(for: .milliseconds(500))
            #expect(worker.isRunning, "the worker waits for its in-flight transaction")
            try await lock.release()
            #expect(await worker.waitForExit(timeout: .seconds(20)))
            #expect(worker.exitStatus == 0, "\(worker.output)")
            #expect(try await stack.outcome(of: "drain-1", timeout: .zero) == "booked", "finished, then acknowledged")
            #expect(try await stack.pendingCount("bookings") == 0)
            await stack.shutdown()
        }

        @Test func sigtermPastTheDrainTimeoutRollsBackReleasesTheLeaseAndLeavesTheEntryPending() async throws {
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1, workerEnvironment: ["LEASEHOLD_DRAIN_TIMEOUT_MS": "500"])
            let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
            let lock = try await SlotLock(stack, slot: slot)
            #expect(try await stack.book(requestID: "abandon-1", userID: 1, slotID: slot).status == 202)
            try await waitUntil { try await SystemTests.blockedWorkerTransactions(stack) == 1 }

            let worker = try #require(stack.workers.first)
            worker.send(SIGTERM)
            #expect(await worker.waitForExit(timeout: .seconds(15)))
            #expect(worker.exitStatus == 0, "\(worker.output)")
            try await lock.release()

            #expect(try await SystemTests.blockedWorkerTransactions(stack) == 0, "its statement was cancelled")
            let inbox = try await stack.postgres.query("SELECT count(*) FROM inbox").single().decode(Int64.self, at: 0)
            #expect(inbox == 0, "rolled back")
            #expect(try await stack.pendingCount("bookings") == 1, "left pending for the supervisor")
            let lease = try await stack.redis.send("EXISTS", "\(stack.prefix)lease:api:abandon-1")
            #expect(lease.int == 0, "lease released on the way out")
            await stack.shutdown()
        }

        @Test func aLeaseHeldElsewhereKeepsTheWorkerOffTheEntry() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 1)
            let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
            // Someone else (a slow worker elsewhere) holds the lease of this message key.
            let lease = "\(stack.prefix)lease:api:leased-1"
            _ = try await stack.redis.send("SET", lease, "other-worker:token", "PX", 60_000)
            #expect(try await stack.book(requestID: "leased-1", userID: 1, slotID: slot).status == 202)
            try await Task.sleep(for: .seconds(4))  // longer than the worker's lease wait (2 s)
            #expect(try await stack.outcome(of: "leased-1", timeout: .zero) == "pending")
            let inbox = try await stack.postgres.query("SELECT count(*) FROM inbox").single().decode(Int64.self, at: 0)
            #expect(inbox == 0, "no transaction ran under someone else's lease")
            #expect(try await stack.pendingCount("bookings") == 1, "left pending, not acknowledged")
            #expect(
                try await stack.redis.send("GET", lease).string == "other-worker:token",
                "never deleted someone else's lease")
            await stack.shutdown()
        }

        @Test func theHeartbeatKeepsTheLeaseOfATransactionLongerThanItsTTL() async throws {
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1, workerEnvironment: ["LEASEHOLD_LEASE_TTL_MS": "600"])
            let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
            let lock = try await SlotLock(stack, slot: slot)
            #expect(try await stack.book(requestID: "slow-1", userID: 1, slotID: slot).status == 202)
            try await waitUntil { try await SystemTests.blockedWorkerTransactions(stack) == 1 }
            // Five TTLs later the lease is still there, still the worker's.
            for _ in 0..<6 {
                try await Task.sleep(for: .milliseconds(500))
                let holder = try await stack.redis.send("GET", "\(stack.prefix)lease:api:slow-1").string
                #expect(
                    holder?.hasPrefix("worker-0:") == true,
                    "lease renewed while the transaction runs: \(holder ?? "nil")")
            }
            try await lock.release()
            #expect(try await stack.outcome(of: "slow-1") == "booked")
            let released = try await stack.redis.send("EXISTS", "\(stack.prefix)lease:api:slow-1")
            #expect(released.int == 0, "released after the acknowledgement")
            await stack.shutdown()
        }
    }
}
