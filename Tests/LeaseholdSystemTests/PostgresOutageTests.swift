import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdRuntime
import LeaseholdTesting
import LeaseholdWire
import Testing

/// A PostgreSQL outage longer than the whole retry budget costs no attempt: the worker keeps its
/// entries and their leases and carries on when the server is back. The test runs a PostgreSQL
/// of its own, so stopping it disturbs no other test.
extension SystemTests {
    @Suite("PostgreSQL outage", .enabled(if: IntegrationEnvironment.serverBinariesInstalled))
    struct PostgresOutageTests {
        @Test func anOutageLongerThanTheRetryBudgetDeadLettersNothingAndProcessesEverythingOnce() async throws {
            let directory = try makeTemporaryDirectory("outage")
            let server = try LocalStack(
                options: LocalStackOptions(directory: directory, postgresSettings: ["fsync": "off"]))
            try await server.startPostgres()
            let prefix = "\(IntegrationEnvironment.uniqueName("lho")):"
            let redis = try IntegrationEnvironment.redisClient(size: 2)
            var postgres = PostgresClient(
                configuration: PostgresConfiguration(connectionString: server.postgresURL, connectTimeoutSeconds: 2),
                size: 2)
            var worker: ChildProcess?
            do {
                _ = try await Migrator(client: postgres).migrate(
                    try Migration.load(from: LeaseholdExecutable.migrationsDirectory))
                let environment = [
                    "POSTGRES_URL": server.postgresURL, "REDIS_URL": IntegrationEnvironment.redisURL,
                    "LEASEHOLD_REDIS_PREFIX": prefix, "LOG_LEVEL": "info",
                ]
                let seeded = try await LeaseholdExecutable.run(
                    ["slots", "sync", "--generate", "4", "--users", "4", "--json", "--start", "2030-01-01T09:00:00Z"],
                    in: directory, environment: environment)
                #expect(seeded.status == 0, "\(seeded.output)")
                let slots = try await postgres.query("SELECT id FROM time_slots ORDER BY id").rows.map {
                    try $0.decode(Int64.self, at: 0)
                }
                try #require(slots.count == 4)

                // A tiny retry budget: without the outage window, a few seconds would dead-letter.
                let metricsPort = try freeLoopbackPort()
                let metricsURL = "http://127.0.0.1:\(metricsPort)/metrics"
                let started = try LeaseholdExecutable.start(
                    ["worker"], name: "worker-0", in: directory,
                    environment: environment.merging([
                        "LEASEHOLD_METRICS_PORT": String(metricsPort),
                        "LEASEHOLD_CONSUMER_NAME": "worker-0", "LEASEHOLD_RETRY_BASE_MS": "50",
                        "LEASEHOLD_RETRY_MAX_DELAY_MS": "100", "LEASEHOLD_RETRY_MAX_ATTEMPTS": "2",
                        "LEASEHOLD_WORKER_CONCURRENCY": "4", "LEASEHOLD_LEASE_TTL_MS": "1500",
                    ]) { $1 })
                worker = started
                let keys = RedisKeys(prefix: prefix)
                let producer = StreamProducer(keys: keys, highWaterMark: 0)
                func enqueue(user: Int64, slot: Int64) async throws {
                    let request = BookingRequest(action: .book, userID: user, slotID: slot, requestID: "outage-\(user)")
                    let entry = StreamEntry(
                        stream: keys.stream("bookings"), key: "api:outage-\(user)", kind: BookingRequest.kind,
                        payload: Array(try JSONEncoder().encode(request)))
                    _ = try await producer.enqueue(entry, via: redis)
                }

                // One booking is mid-transaction (blocked on a slot lock) when PostgreSQL stops.
                let lock = try await PostgresSession.open(postgres.configuration)
                try await lock.simpleQuery("BEGIN")
                try await lock.query("SELECT id FROM time_slots WHERE id = \(slots[0]) FOR UPDATE")
                try await enqueue(user: 1, slot: slots[0])
                try await waitUntil {
                    try await postgres.query(
                        """
                        SELECT count(*) FROM pg_stat_activity
                        WHERE application_name = 'leasehold-worker' AND wait_event_type = 'Lock'
                        """
                    ).single().decode(Int64.self, at: 0) == 1
                }
                await server.stopPostgres()
                await lock.close()
                // The rest arrive while it is down.
                for user in Int64(2)...4 { try await enqueue(user: user, slot: slots[Int(user) - 1]) }

                // Far longer than the retry budget (two attempts, 50–100 ms apart) and than the lease TTL.
                try await Task.sleep(for: .seconds(4))
                #expect(started.isRunning)
                let retries = try await redis.send("ZCARD", keys.retrySchedule(for: keys.stream("bookings")))
                #expect(retries.int == 0, "no attempt spent during the outage")
                let pending = try await redis.send("XPENDING", keys.stream("bookings"), "workers")
                #expect(pending.array?.first?.int == 4, "every entry stays with the worker")
                let lease = try await redis.send("GET", keys.lease("api:outage-1", in: keys.stream("bookings"))).string
                #expect(lease?.hasPrefix("worker-0:") == true, "the heartbeat keeps the lease: \(lease ?? "nil")")
                // The worker says which server it cannot reach (LeaseholdPostgresUnreachable's series).
                func dependencyUp(_ dependency: String) async -> Double? {
                    await scrapeMetrics(metricsURL).map {
                        metricValue($0, "leasehold_dependency_up", ["dependency": dependency])
                    }
                }
                try await waitUntil(timeout: .seconds(30), "the worker reports PostgreSQL unreachable") {
                    await dependencyUp("postgres") == 0
                }
                #expect(await dependencyUp("redis") == 1)

                try await server.startPostgres()
                // The test's own pool lost its connections too: check with a fresh one.
                await postgres.close()
                postgres = PostgresClient(
                    configuration: PostgresConfiguration(connectionString: server.postgresURL), size: 2)
                try await waitUntil(timeout: .seconds(30)) {
                    let done = try await redis.send("XPENDING", keys.stream("bookings"), "workers").array?.first?.int
                    return done == 0
                }
                try await waitUntil(timeout: .seconds(30), "the worker reports PostgreSQL reachable again") {
                    await dependencyUp("postgres") == 1
                }
                let inbox = try await postgres.query("SELECT count(*) FROM inbox").single().decode(Int64.self, at: 0)
                #expect(inbox == 4, "every message processed")
                let interviews = try await postgres.query(
                    "SELECT user_id, count(*) FROM interviews GROUP BY user_id ORDER BY user_id"
                ).rows.map { try $0.decode(Int64.self, Int64.self) }
                #expect(interviews.map(\.0) == [1, 2, 3, 4] && interviews.allSatisfy { $0.1 == 1 }, "\(interviews)")
                let deadLetters = try await postgres.query("SELECT count(*) FROM dead_letters").single()
                    .decode(Int64.self, at: 0)
                #expect(deadLetters == 0)
                #expect(
                    try await redis.send("ZCARD", keys.retrySchedule(for: keys.stream("bookings"))).int == 0,
                    "nothing in the retry schedule")
                for user in 1...4 {
                    let outcome = try await redis.send("GET", keys.result("outage-\(user)")).string ?? ""
                    #expect(outcome.contains("\"booked\""), "outage-\(user): \(outcome)")
                }
                await started.stop(signal: SIGTERM, timeout: .seconds(30))
                #expect(started.exitStatus == 0, "\(started.output)")
            } catch {
                Issue.record("\(error)\n\(worker?.output ?? "")")
            }
            if let worker { await worker.stop(signal: SIGKILL, timeout: .seconds(10)) }
            await postgres.close()
            await redis.deleteKeys(withPrefix: prefix)
            redis.close()
            await server.stop()
            try? FileManager.default.removeItem(at: directory)
        }
    }
}
