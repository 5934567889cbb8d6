import Foundation
import LeaseholdPostgres
import LeaseholdTesting
import Testing

extension SystemTests {
    /// Review issue 12, with real processes: a long transaction is never taken from its live
    /// worker, and every failed attempt is kept into the dead letter.
    @Suite("Supervisor: heartbeat keeps entries fresh; every attempt's error is kept")
    struct SupervisorHardeningTests {
        private func count(_ stack: ProcessStack, _ sql: PostgresQuery) async throws -> Int64 {
            try await stack.postgres.query(sql).single().decode(Int64.self, at: 0)
        }

        /// `(consumer, idle ms, deliveries)` of every pending entry of `stream`.
        private func pending(_ stack: ProcessStack, _ source: String) async throws -> [(String, Int64, Int64)] {
            let reply = try await stack.redis.send("XPENDING", stack.stream(source), "workers", "-", "+", 100)
            return (reply.array ?? []).compactMap { item in
                guard let fields = item.array, fields.count == 4 else { return nil }
                return (fields[1].string ?? "", fields[2].int ?? -1, fields[3].int ?? -1)
            }
        }

        /// The JSON object `leasehold dlq show <id> --json` printed (its output may hold log lines).
        private func showJSON(_ stack: ProcessStack, _ id: Int) async throws -> [String: Any] {
            let shown = try await LeaseholdExecutable.run(
                ["dlq", "show", String(id), "--json"], in: stack.directory, environment: stack.environment)
            #expect(shown.status == 0, "\(shown.output)")
            let json = try #require(
                shown.output.range(of: "\n{").map { String(shown.output[$0.lowerBound...]) }
                    ?? (shown.output.hasPrefix("{") ? shown.output : nil), "\(shown.output)")
            return try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        }

        @Test func aTransactionLongerThanTheVisibilityTimeoutIsNeitherReclaimedNorRedelivered() async throws {
            // Lease 900 ms (heartbeat every 300 ms), visibility timeout 2 s, a transaction of 6 s.
            let workerEnvironment = [
                "LEASEHOLD_LEASE_TTL_MS": "900", "LEASEHOLD_LOCK_TIMEOUT_MS": "30000",
                "LEASEHOLD_STATEMENT_TIMEOUT_MS": "60000",
            ]
            let supervisorEnvironment = [
                "LEASEHOLD_VISIBILITY_TIMEOUT_MS": "2000", "LEASEHOLD_SUPERVISOR_INTERVAL_MS": "100",
                "LEASEHOLD_LEADER_TTL_MS": "2000",
            ]
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1, workerEnvironment: workerEnvironment, supervisors: 1,
                supervisorEnvironment: supervisorEnvironment)
            let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
            try await waitUntil { try await stack.redis.send("GET", "\(stack.prefix)leader").string != nil }
            // Hold the slot's row lock: the booking's transaction waits inside the worker.
            let lock = try await PostgresSession.open(stack.database.configuration)
            try await lock.simpleQuery("BEGIN")
            try await lock.query("SELECT id FROM time_slots WHERE id = \(slot) FOR UPDATE")
            #expect(try await stack.book(requestID: "long-1", userID: 1, slotID: slot).status == 202)
            try await waitUntil { try await stack.pendingCount("bookings") == 1 }

            // Three visibility timeouts long, the entry stays with worker-0, never idle past the
            // timeout, delivered once.
            var largestIdle: Int64 = 0
            let started = ContinuousClock.now
            while ContinuousClock.now - started < .seconds(6) {
                let entries = try await pending(stack, "bookings")
                #expect(entries.count == 1)
                if let entry = entries.first {
                    let (consumer, idle, deliveries) = entry
                    #expect(consumer == "worker-0", "still with its worker")
                    #expect(deliveries == 1, "never redelivered")
                    largestIdle = max(largestIdle, idle)
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(
                largestIdle < 2000, "the heartbeat keeps the entry's idle time below the timeout: \(largestIdle) ms")
            #expect(try await stack.redis.send("ZCARD", "\(stack.prefix)retry").int == 0, "nothing reclaimed")

            try await lock.simpleQuery("ROLLBACK")
            await lock.close()
            #expect(try await stack.outcome(of: "long-1", timeout: .seconds(30)) == "booked")
            try await waitUntil { try await stack.pendingCount("bookings") == 0 }
            #expect(try await count(stack, "SELECT count(*) FROM inbox") == 1)
            #expect(try await count(stack, "SELECT count(*) FROM dead_letters") == 0)
            #expect(try await stack.streamLength("bookings") <= 1, "no retry was ever added to the stream")
            await stack.shutdown()
        }

        /// Every transaction for `api:<requestID>` fails with `poisoned: …` until the trigger goes.
        private func poison(_ stack: ProcessStack, requestID: String, waitForLock: Bool = false) async throws {
            try await stack.postgres.query(
                """
                CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.message_key = 'api:\(unescaped: requestID)' THEN
                        \(unescaped: waitForLock ? "PERFORM pg_advisory_xact_lock_shared(4242);" : "")
                        RAISE EXCEPTION 'poisoned: the row this message needs is missing';
                    END IF;
                    RETURN NEW;
                END $$
                """)
            try await stack.postgres.query(
                "CREATE TRIGGER poison BEFORE INSERT ON inbox FOR EACH ROW EXECUTE FUNCTION poison()")
        }

        @Test func everyFailedAttemptIsKeptWithItsTimeWorkerAndErrorIntoTheDeadLetter() async throws {
            let policy = [
                "LEASEHOLD_RETRY_BASE_MS": "20", "LEASEHOLD_RETRY_MAX_DELAY_MS": "100",
                "LEASEHOLD_RETRY_MAX_ATTEMPTS": "3", "LEASEHOLD_SUPERVISOR_INTERVAL_MS": "100",
                "LEASEHOLD_LEADER_TTL_MS": "2000",
            ]
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1, workerEnvironment: policy, supervisors: 1, supervisorEnvironment: policy)
            let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
            try await poison(stack, requestID: "attempts-1")
            let sent = Date()
            #expect(try await stack.book(requestID: "attempts-1", userID: 1, slotID: slot).status == 202)
            try await waitUntil(timeout: .seconds(60)) {
                try await count(stack, "SELECT count(*) FROM dead_letters") == 1
            }
            let row = try await stack.postgres.query(
                "SELECT id, attempts, last_error, jsonb_array_length(error_history) FROM dead_letters"
            ).single()
            let (id, attempts, lastError, recorded) = try row.decode(Int64.self, Int32.self, String.self, Int32.self)
            #expect(attempts == 3)
            #expect(lastError.contains("poisoned: the row this message needs is missing"), "last_error still works")
            #expect(recorded == 3, "one record per attempt")

            // `leasehold dlq show <id> --json` prints them, oldest first.
            let letter = try await showJSON(stack, Int(id))
            let history = try #require(letter["error_history"] as? [[String: Any]], "\(letter)")
            #expect(history.count == 3, "\(history)")
            for (index, record) in history.enumerated() {
                #expect(record["attempt"] as? Int == index + 1, "\(record)")
                #expect(record["worker"] as? String == "worker-0", "\(record)")
                #expect((record["error"] as? String)?.contains("poisoned") == true, "\(record)")
                let at = try #require(record["at"] as? String)
                let time = try #require(
                    try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(at), "\(at)")
                #expect(time >= sent.addingTimeInterval(-1) && time <= Date(), "\(at)")
            }
            let times = history.compactMap { $0["at"] as? String }
            #expect(times == times.sorted(), "oldest first")

            // The plain form lists them too.
            let plain = try await LeaseholdExecutable.run(
                ["dlq", "show", String(id)], in: stack.directory, environment: stack.environment)
            #expect(plain.status == 0, "\(plain.output)")
            for attempt in 1...3 {
                #expect(plain.output.contains("#\(attempt)  "), "\(plain.output)")
            }
            #expect(plain.output.components(separatedBy: "worker-0").count - 1 == 3, "\(plain.output)")
            await stack.shutdown()
        }

        @Test func anAttemptWhoseWorkerDiedIsRecordedByTheSupervisor() async throws {
            let fast = [
                "LEASEHOLD_LEASE_TTL_MS": "1000", "LEASEHOLD_VISIBILITY_TIMEOUT_MS": "2000",
                "LEASEHOLD_SUPERVISOR_INTERVAL_MS": "100", "LEASEHOLD_LEADER_TTL_MS": "2000",
                "LEASEHOLD_RETRY_BASE_MS": "20", "LEASEHOLD_RETRY_MAX_DELAY_MS": "100",
                "LEASEHOLD_RETRY_MAX_ATTEMPTS": "3", "LEASEHOLD_LOCK_TIMEOUT_MS": "30000",
            ]
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1, workerEnvironment: fast, supervisors: 1, supervisorEnvironment: fast)
            let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
            try await poison(stack, requestID: "died-1", waitForLock: true)
            // The first attempt waits on an advisory lock the test holds, inside the worker.
            let lock = try await PostgresSession.open(stack.database.configuration)
            try await lock.query("SELECT pg_advisory_lock(4242)")
            #expect(try await stack.book(requestID: "died-1", userID: 1, slotID: slot).status == 202)
            try await waitUntil { try await stack.pendingCount("bookings") == 1 }
            try await Task.sleep(for: .milliseconds(300))
            let victim = try #require(stack.workers.first)
            victim.send(SIGKILL)
            #expect(await victim.waitForExit(timeout: .seconds(10)))
            try await lock.query("SELECT pg_advisory_unlock(4242)")
            await lock.close()
            try stack.startWorker(name: "worker-1", environment: fast)

            try await waitUntil(timeout: .seconds(60)) {
                try await count(stack, "SELECT count(*) FROM dead_letters") == 1
            }
            let id = try await stack.postgres.query("SELECT id FROM dead_letters").single().decode(Int64.self, at: 0)
            let history = try #require(try await showJSON(stack, Int(id))["error_history"] as? [[String: Any]])
            #expect(history.count == 3, "\(history)")
            let first = history.first ?? [:]
            #expect(first["attempt"] as? Int == 1)
            #expect(first["worker"] as? String == "worker-0", "\(first)")
            #expect((first["error"] as? String)?.contains("worker worker-0 stopped responding") == true, "\(first)")
            for record in history.dropFirst() {
                #expect(record["worker"] as? String == "worker-1", "\(record)")
                #expect((record["error"] as? String)?.contains("poisoned") == true, "\(record)")
            }
            await stack.shutdown()
        }
    }
}
