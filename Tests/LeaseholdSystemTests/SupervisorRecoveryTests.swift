import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdTesting
import Testing

extension SystemTests {
    /// "Nothing accepted is lost" and "never retried forever", with real processes and signals.
    @Suite("Supervisor: reclaim, retry, dead letters")
    struct SupervisorRecoveryTests {
        /// Fast timings so the tests take seconds: leases expire 1 s after their worker dies,
        /// entries are reclaimed after 2 s, retries start at 100 ms.
        static let fast: [String: String] = [
            "LEASEHOLD_LEASE_TTL_MS": "1000", "LEASEHOLD_VISIBILITY_TIMEOUT_MS": "2000",
            "LEASEHOLD_SUPERVISOR_INTERVAL_MS": "200", "LEASEHOLD_LEADER_TTL_MS": "2000",
            "LEASEHOLD_RETRY_BASE_MS": "100", "LEASEHOLD_RETRY_MAX_DELAY_MS": "400",
            "LEASEHOLD_RETRY_MAX_ATTEMPTS": "4",
        ]

        private func count(_ stack: ProcessStack, _ sql: PostgresQuery) async throws -> Int64 {
            try await stack.postgres.query(sql).single().decode(Int64.self, at: 0)
        }

        @Test(arguments: [nil, 3] as [Int?])
        func killDashNineOfAWorkerHoldingFiftyEntriesLosesNothingAndDoublesNothing(shards: Int?) async throws {
            var workerEnvironment = Self.fast
            workerEnvironment["LEASEHOLD_WORKER_CONCURRENCY"] = "64"
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1, workerEnvironment: workerEnvironment, supervisors: 1,
                supervisorEnvironment: Self.fast, shards: shards)
            let slot = try #require(try await stack.seed(slots: 1, users: 50).first)
            // Hold the slot's row lock: all 50 transactions block inside the worker, unacknowledged.
            let lock = try await PostgresSession.open(stack.database.configuration)
            try await lock.simpleQuery("BEGIN")
            try await lock.query("SELECT id FROM time_slots WHERE id = \(slot) FOR UPDATE")
            for user in 1...50 {
                #expect(try await stack.book(requestID: "k9-\(user)", userID: Int64(user), slotID: slot).status == 202)
            }
            try await waitUntil { try await stack.pendingCount("bookings") == 50 }
            let victim = try #require(stack.workers.first)
            victim.send(SIGKILL)
            #expect(await victim.waitForExit(timeout: .seconds(10)))
            try await lock.simpleQuery("ROLLBACK")
            await lock.close()
            // Nothing half-written: each booking is one statement, which the dead worker's backend
            // runs whole (once the lock is gone) or not at all, so no committed inbox row is ever
            // without its final outcome.
            #expect(try await count(stack, "SELECT count(*) FROM inbox WHERE outcome = 'pending'") == 0)

            // A new worker and the supervisor finish the job.
            try stack.startWorker(name: "worker-1", environment: Self.fast)
            var outcomes: [String: Int] = [:]
            for user in 1...50 {
                outcomes[try await stack.outcome(of: "k9-\(user)", timeout: .seconds(90)), default: 0] += 1
            }
            #expect(outcomes == ["booked": 1, "slot_taken": 49], "\(outcomes)")
            #expect(try await count(stack, "SELECT count(*) FROM inbox") == 50, "each entry processed exactly once")
            #expect(
                try await count(
                    stack, "SELECT count(*) FROM interviews WHERE time_slot_id = \(slot) AND status = 'active'")
                    == 1)
            #expect(try await count(stack, "SELECT count(*) FROM dead_letters") == 0)
            try await waitUntil { try await stack.pendingCount("bookings") == 0 }
            await stack.shutdown()
        }

        @Test(arguments: [nil, 3] as [Int?])
        func aPoisonMessageIsRetriedThenDeadLetteredWithItsLastError(shards: Int?) async throws {
            let metricsPort = try freeLoopbackPort()
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1, workerEnvironment: Self.fast, supervisors: 1,
                supervisorEnvironment: Self.fast.merging(["LEASEHOLD_METRICS_PORT": String(metricsPort)]) { $1 },
                shards: shards)
            let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
            // Every transaction for this key fails (as if a row it needs were missing).
            try await stack.postgres.query(
                """
                CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.message_key = 'api:poison-1' THEN
                        RAISE EXCEPTION 'poisoned: the row this message needs is missing';
                    END IF;
                    RETURN NEW;
                END $$
                """)
            try await stack.postgres.query(
                "CREATE TRIGGER poison BEFORE INSERT ON inbox FOR EACH ROW EXECUTE FUNCTION poison()")
            let started = ContinuousClock.now
            #expect(try await stack.book(requestID: "poison-1", userID: 1, slotID: slot).status == 202)
            try await waitUntil(timeout: .seconds(60)) {
                try await count(stack, "SELECT count(*) FROM dead_letters") == 1
            }
            let elapsed = started.duration(to: .now)
            let row = try await stack.postgres.query(
                "SELECT message_key, attempts, last_error, status, stream FROM dead_letters"
            ).single()
            let (key, attempts, lastError, status, stream) = try row.decode(
                String.self, Int32.self, String.self, String.self, String.self)
            #expect(key == "api:poison-1")
            #expect(attempts == 4, "dead-lettered after the policy's 4 attempts")
            #expect(lastError.contains("poisoned: the row this message needs is missing"))
            #expect(status == "dead")
            #expect(stream == stack.keys.bookingStream(requestID: "poison-1"))
            // Three retries at 50–100, 100–200, 200–400 ms (equal jitter): at least 350 ms in all.
            #expect(elapsed >= .milliseconds(350))
            #expect(try await count(stack, "SELECT count(*) FROM inbox") == 0)
            try await waitUntil { try await stack.pendingCount("bookings") == 0 }
            let schedules = stack.keys.retrySchedules(for: stack.keys.streams(RedisKeys.sources))
            #expect(schedules.count == (shards.map { $0 * 3 } ?? 1), "one per stream, or one for all")
            for schedule in schedules {
                #expect(try await stack.redis.send("ZCARD", schedule).int == 0, "nothing left in \(schedule)")
            }

            // Ops: the letter shows up in `leasehold dlq list --json`.
            let listed = try await LeaseholdExecutable.run(
                ["dlq", "list", "--json"], in: stack.directory, environment: stack.environment)
            #expect(listed.status == 0, "\(listed.output)")
            let json = String(listed.output.drop { $0 != "[" })
            let letters = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]]
            let id = try #require(letters?.first?["id"] as? Int)
            #expect(letters?.first?["message_key"] as? String == "api:poison-1")

            // Fix the cause, replay: it succeeds exactly once; a second replay sends nothing.
            try await stack.postgres.query("DROP TRIGGER poison ON inbox")
            let replay = try await LeaseholdExecutable.run(
                ["dlq", "replay", String(id)], in: stack.directory, environment: stack.environment)
            #expect(replay.status == 0 && replay.output.contains("1 replayed"), "\(replay.output)")
            #expect(try await stack.outcome(of: "poison-1") == "booked")
            let again = try await LeaseholdExecutable.run(
                ["dlq", "replay", String(id)], in: stack.directory, environment: stack.environment)
            #expect(again.output.contains("0 replayed"), "\(again.output)")
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await count(stack, "SELECT count(*) FROM inbox WHERE message_key = 'api:poison-1'") == 1)

            // The supervisor's metrics endpoint tells the story.
            let metrics = try await stack.fetch("http://127.0.0.1:\(metricsPort)/metrics")
            #expect(metrics.status == 200)
            for name in [
                "leasehold_supervisor_is_leader 1", "leasehold_supervisor_leader_changes_total",
                "leasehold_stream_length", "leasehold_stream_pending", "leasehold_stream_undelivered",
                "leasehold_stream_oldest_pending_age_seconds",
                "leasehold_retry_backlog",
            ] {
                #expect(metrics.body.contains(name), "\(name) on /metrics")
            }
            #expect(try await stack.fetch("http://127.0.0.1:\(metricsPort)/readyz").status == 200)
            #expect(try await count(stack, "SELECT count(*) FROM interviews") == 1)
            #expect(try await count(stack, "SELECT count(*) FROM dead_letters WHERE status = 'replayed'") == 1)
            await stack.shutdown()
        }

        @Test func aWorkerPausedPastItsLeaseThenResumedChangesNothingTwice() async throws {
            var workerEnvironment = Self.fast
            workerEnvironment["LEASEHOLD_LOCK_TIMEOUT_MS"] = "20000"
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1, workerEnvironment: workerEnvironment, supervisors: 1,
                supervisorEnvironment: Self.fast)
            let slot = try #require(try await stack.seed(slots: 1, users: 5).first)
            let lock = try await PostgresSession.open(stack.database.configuration)
            try await lock.simpleQuery("BEGIN")
            try await lock.query("SELECT id FROM time_slots WHERE id = \(slot) FOR UPDATE")
            for user in 1...5 {
                #expect(
                    try await stack.book(requestID: "pause-\(user)", userID: Int64(user), slotID: slot).status == 202)
            }
            try await waitUntil { try await stack.pendingCount("bookings") == 5 }

            // Pause the worker mid-transaction, past its lease TTL; another worker takes over.
            let paused = try #require(stack.workers.first)
            paused.send(SIGSTOP)
            try await lock.simpleQuery("ROLLBACK")
            await lock.close()
            try stack.startWorker(name: "worker-1", environment: workerEnvironment)
            try await Task.sleep(for: .seconds(4))  // leases (1 s) expired, entries reclaimed (2 s)
            paused.send(SIGCONT)

            var outcomes: [String: Int] = [:]
            for user in 1...5 {
                outcomes[try await stack.outcome(of: "pause-\(user)", timeout: .seconds(90)), default: 0] += 1
            }
            #expect(outcomes == ["booked": 1, "slot_taken": 4], "\(outcomes)")
            try await waitUntil { try await stack.pendingCount("bookings") == 0 }
            #expect(try await count(stack, "SELECT count(*) FROM inbox") == 5, "one inbox row per message")
            #expect(try await count(stack, "SELECT count(*) FROM outbox") == 5, "one reply per message")
            #expect(try await count(stack, "SELECT count(*) FROM interviews") == 1, "one interview in all")
            await stack.shutdown()
        }

        @Test func killingTheLeaderHandsLeadershipOverWithinOneTTLAndNeverEarly() async throws {
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 0, supervisors: 2, supervisorEnvironment: Self.fast)
            let leaderKey = "\(stack.prefix)leader"
            try await waitUntil { try await stack.redis.send("GET", leaderKey).string != nil }
            let holder = try #require(try await stack.redis.send("GET", leaderKey).string)
            let leader = try #require(stack.supervisors.first { holder.contains("-\($0.pid)-") }, "\(holder)")
            let follower = try #require(stack.supervisors.first { $0.pid != leader.pid })

            let remaining = Int64(try await stack.redis.send("PTTL", leaderKey).int ?? 0)
            let killed = ContinuousClock.now
            leader.send(SIGKILL)
            var newHolder: String?
            while ContinuousClock.now - killed < .seconds(10) {
                newHolder = try await stack.redis.send("GET", leaderKey).string
                if let newHolder, newHolder != holder { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let elapsed = ContinuousClock.now - killed
            #expect(
                newHolder?.contains("-\(follower.pid)-") == true, "the other supervisor leads: \(newHolder ?? "nil")")
            #expect(elapsed <= .milliseconds(2000 + 1500), "within one lease TTL (2 s) plus polling slack")
            // Never early: the follower took the lease only after the dead leader's had expired.
            #expect(
                elapsed >= .milliseconds(max(0, remaining - 50)),
                "took over after \(elapsed), lease had \(remaining) ms left")
            await stack.shutdown()
        }
    }
}
