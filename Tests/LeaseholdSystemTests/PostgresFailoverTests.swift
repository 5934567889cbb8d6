import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import Synchronization
import Testing

/// A failover of PostgreSQL under booking load: the primary's host dies (SIGKILL for every one of
/// its processes), the synchronous standby is promoted, and the roles, given one multi-host URL
/// (`target_session_attrs=read-write`), find the new primary by themselves. Nothing a client was
/// told is lost, nothing is done twice, no worker restarts, and the failover spends no attempt.
///
/// The test runs a primary and a standby of its own (``ReplicatedPostgres``) and the shared Redis.
extension SystemTests {
    @Suite("PostgreSQL failover", .enabled(if: IntegrationEnvironment.serverBinariesInstalled))
    struct PostgresFailoverTests {
        /// Where the load is when a request is sent.
        enum Phase: Int, Sendable {
            case primaryUp, primaryDown, promoted
        }

        /// The load's shared state: the phase, the requests ingress accepted (a 2xx) with the phase
        /// each was sent in, and what it refused.
        final class Load: Sendable {
            private let state = Mutex<[(id: String, phase: Phase)]>([])
            private let refused = Mutex<[String]>([])
            private let current = Atomic<Int>(Phase.primaryUp.rawValue)
            private let sequence = Atomic<Int>(0)
            private let stopped = Atomic<Bool>(false)

            var phase: Phase {
                get { Phase(rawValue: current.load(ordering: .relaxed)) ?? .primaryUp }
                set { current.store(newValue.rawValue, ordering: .relaxed) }
            }
            var isStopped: Bool { stopped.load(ordering: .relaxed) }
            func stop() { stopped.store(true, ordering: .relaxed) }
            func nextID() -> String { "fo-\(sequence.add(1, ordering: .relaxed).newValue)" }
            func accept(_ id: String, _ phase: Phase) { state.withLock { $0.append((id, phase)) } }
            func refuse(_ reason: String) { refused.withLock { $0.append(reason) } }
            var accepted: [(id: String, phase: Phase)] { state.withLock { $0 } }
            func accepted(in phase: Phase) -> [String] { accepted.filter { $0.phase == phase }.map(\.id) }
            var refusals: [String] { refused.withLock { $0 } }
        }

        static let slots = 400
        static let users = 1500

        @Test(.timeLimit(.minutes(3)))
        func killingThePrimaryLosesNoCommittedBookingAndWorkersCarryOn() async throws {
            let began = ContinuousClock.now
            let pair = try await ReplicatedPostgres.start()
            let prefix = "\(IntegrationEnvironment.uniqueName("lhf")):"
            let keys = RedisKeys(prefix: prefix)
            let directory: URL
            let redis: RedisClient
            let port: Int
            do {
                directory = try makeTemporaryDirectory("failover")
                redis = try IntegrationEnvironment.redisClient(size: 4)
                port = try freeLoopbackPort()
            } catch {
                await pair.stop()
                throw error
            }
            let client = BookingClient(baseURL: "http://127.0.0.1:\(port)")
            var processes: [ChildProcess] = []
            func logs() -> String {
                processes.map { process in
                    // A crash report's first lines say what crashed; the end says what came last.
                    let crash = process.output.range(of: "crashed").map {
                        String(process.output[$0.lowerBound...].prefix(4000)) + "\n…\n"
                    }
                    return "--- \(process.name)\n\(crash ?? "")\(process.output.suffix(3000))"
                }.joined(separator: "\n")
                    + "\n" + pair.logs
            }
            do {
                let environment = [
                    "POSTGRES_URL": pair.url, "REDIS_URL": IntegrationEnvironment.redisURL,
                    "LEASEHOLD_REDIS_PREFIX": prefix, "LEASEHOLD_API_TOKEN": ProcessStack.apiToken, "LOG_LEVEL": "info",
                    "LEASEHOLD_MIGRATIONS_DIR": LeaseholdExecutable.migrationsDirectory.path,
                ]
                // Migrated and seeded through the multi-host URL, whose first host is the standby.
                let migrated = try await LeaseholdExecutable.run(["migrate"], in: directory, environment: environment)
                try #require(migrated.status == 0, "\(migrated.output)")
                #expect(migrated.output.contains("(on 127.0.0.1:\(pair.primaryPort))"), "\(migrated.output)")
                let seeded = try await LeaseholdExecutable.run(
                    [
                        "slots", "sync", "--generate", String(Self.slots), "--users", String(Self.users), "--json",
                        "--start", "2030-01-01T09:00:00Z",
                    ],
                    in: directory, environment: environment)
                try #require(seeded.status == 0, "\(seeded.output)")
                let primary = PostgresClient(
                    configuration: pair.nodeConfiguration(port: pair.primaryPort), size: 1)
                let slotIDs = try await primary.query("SELECT id FROM time_slots ORDER BY id").rows.map {
                    try $0.decode(Int64.self, at: 0)
                }
                await primary.close()
                try #require(slotIDs.count == Self.slots)

                let ingress = try LeaseholdExecutable.start(
                    ["ingress", "--host", "127.0.0.1", "--port", String(port)], name: "ingress", in: directory,
                    environment: environment)
                processes.append(ingress)
                // A tiny retry budget: a failover that cost attempts would dead-letter within seconds.
                for index in 0..<2 {
                    let worker = try LeaseholdExecutable.start(
                        ["worker"], name: "worker-\(index)", in: directory,
                        environment: environment.merging([
                            "LEASEHOLD_CONSUMER_NAME": "failover-worker-\(index)", "LEASEHOLD_WORKER_CONCURRENCY": "8",
                            "LEASEHOLD_RETRY_BASE_MS": "50", "LEASEHOLD_RETRY_MAX_DELAY_MS": "100",
                            "LEASEHOLD_RETRY_MAX_ATTEMPTS": "2",
                        ]) { $1 })
                    processes.append(worker)
                }
                let workers = processes.filter { $0.name.hasPrefix("worker") }
                try await poll("ingress answers and the workers made their group", timeout: .seconds(60)) {
                    guard await client.isHealthy() else { return false }
                    let groups = try? await redis.send("XINFO", "GROUPS", keys.stream("bookings"))
                    return groups?.array?.isEmpty == false
                }

                // Load: 4 clients, each a booking every ~25 ms, random users and slots (contended).
                let load = Load()
                let sender = Task {
                    await withTaskGroup(of: Void.self) { group in
                        for _ in 0..<4 {
                            group.addTask {
                                while !load.isStopped {
                                    let sent = load.phase
                                    let id = load.nextID()
                                    do {
                                        let status = try await client.book(
                                            requestID: id, userID: Int64.random(in: 1...Int64(Self.users)),
                                            slotID: slotIDs.randomElement()!)
                                        if (200..<300).contains(status) {
                                            load.accept(id, sent)
                                        } else {
                                            load.refuse("\(id): HTTP \(status)")
                                        }
                                    } catch {
                                        load.refuse("\(id): \(error)")
                                    }
                                    try? await Task.sleep(for: .milliseconds(25))
                                }
                            }
                        }
                    }
                }
                defer {
                    load.stop()
                    sender.cancel()
                }

                // Outcomes published so far (a result is published only after its COMMIT returned).
                func published(_ ids: [String]) async throws -> [String: [String: Any]] {
                    var outcomes: [String: [String: Any]] = [:]
                    for chunk in stride(from: 0, to: ids.count, by: 500).map({ ids[$0..<min($0 + 500, ids.count)] }) {
                        let reply = try await redis.send(RedisCommand(["MGET"] + chunk.map { keys.result($0) }))
                        for (id, value) in zip(chunk, reply.array ?? []) {
                            guard let text = value.string,
                                let json = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                                let status = json["status"] as? String, status != "pending"
                            else { continue }
                            outcomes[id] = json
                        }
                    }
                    return outcomes
                }

                // Kill the primary once a good number of bookings have committed on it.
                try await poll("bookings commit on the primary", timeout: .seconds(60)) {
                    try await Self.booked(published(load.accepted.map(\.id))) >= 40
                }
                let committedBeforeKill = try await published(load.accepted.map(\.id))
                load.phase = .primaryDown
                await pair.killPrimary()
                let killed = ContinuousClock.now

                // Workers notice, keep their entries, and wait; ingress keeps accepting.
                try await poll("the workers notice the primary is gone", timeout: .seconds(30)) {
                    workers.allSatisfy { $0.output.contains("server unreachable") }
                }
                try await Task.sleep(for: .seconds(1))
                let whileDown = load.accepted(in: .primaryDown).count
                try await pair.promoteStandby()
                load.phase = .promoted
                let promoted = ContinuousClock.now

                // New requests after the promotion get processed by the same worker processes.
                try await poll("bookings sent after the promotion are processed", timeout: .seconds(60)) {
                    let after = load.accepted(in: .promoted)
                    guard after.count >= 60 else { return false }
                    return try await published(after).count >= 40
                }
                load.stop()
                await sender.value

                // Every accepted request gets its outcome.
                let all = load.accepted
                try await poll("every accepted request has an outcome", timeout: .seconds(90)) {
                    try await published(all.map(\.id)).count == all.count
                }
                let outcomes = try await published(all.map(\.id))

                let newPrimary = PostgresClient(
                    configuration: pair.nodeConfiguration(port: pair.standbyPort), size: 1)
                let inbox = try await newPrimary.query("SELECT message_key, outcome FROM inbox").rows.map {
                    try $0.decode(String.self, String.self)
                }
                let inboxByKey = Dictionary(inbox, uniquingKeysWith: { first, _ in first })
                let interviews = try await newPrimary.query(
                    "SELECT id, time_slot_id, message_key, status FROM interviews"
                ).rows.map { try $0.decode(Int64.self, Int64.self, String.self, String.self) }
                let interviewByID = Dictionary(interviews.map { ($0.0, $0) }, uniquingKeysWith: { first, _ in first })
                let deadLetters = try await newPrimary.query("SELECT count(*) FROM dead_letters").single()
                    .decode(Int64.self, at: 0)
                let workerSessions = try await newPrimary.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'leasehold-worker'"
                ).single().decode(Int64.self, at: 0)
                await newPrimary.close()

                // Every 2xx has exactly one outcome on the promoted node, and it is the one published.
                #expect(inbox.count == all.count, "inbox rows \(inbox.count), accepted \(all.count)")
                var mismatched: [String] = []
                for (id, _) in all {
                    let published = outcomes[id]?["status"] as? String
                    if inboxByKey["api:\(id)"] != published {
                        mismatched.append(
                            "\(id): inbox \(inboxByKey["api:\(id)"] ?? "missing"), published \(published ?? "none")")
                    }
                }
                #expect(mismatched.isEmpty, "\(mismatched.prefix(20))")
                // No booking a client was told about is lost: each `booked` names an active interview
                // of that request, those confirmed before the kill included.
                var lost: [String] = []
                for (id, outcome) in outcomes where outcome["status"] as? String == "booked" {
                    let interviewID = (outcome["interview_id"] as? NSNumber)?.int64Value ?? -1
                    let row = interviewByID[interviewID]
                    if row?.2 != "api:\(id)" || row?.3 != "active" { lost.append("\(id) → interview \(interviewID)") }
                }
                #expect(lost.isEmpty, "booked but not on the promoted node: \(lost.prefix(20))")
                let bookedBeforeKill = Self.booked(committedBeforeKill)
                #expect(bookedBeforeKill >= 40)
                for (id, before) in committedBeforeKill {
                    #expect(
                        outcomes[id]?["status"] as? String == before["status"] as? String,
                        "\(id) changed its outcome across the failover")
                }
                // No slot double-booked, and no booking nobody was told about.
                let active = interviews.filter { $0.3 == "active" }
                #expect(Set(active.map(\.1)).count == active.count, "a slot with two active interviews")
                #expect(active.count == Self.booked(outcomes))
                // The failover spent no attempt: nothing dead-lettered, nothing scheduled for a retry.
                #expect(deadLetters == 0)
                #expect(try await redis.send("ZCARD", keys.retrySchedule(for: keys.stream("bookings"))).int == 0)
                #expect(load.refusals.isEmpty, "ingress refused: \(load.refusals.prefix(10))")
                // The same worker processes carried on, connected to the promoted node.
                let stopped = workers.filter { !$0.isRunning }.map { "\($0.name):\n\($0.output.suffix(3000))" }
                #expect(stopped.isEmpty, "a worker exited: \(stopped)")
                #expect(workerSessions > 0, "no worker connection on the promoted node")
                #expect(whileDown > 0, "requests were accepted while the primary was down")
                for worker in workers {
                    #expect(worker.output.contains("server reachable again"), "\(worker.name) never recovered")
                }
                print(
                    "failover: \(all.count) requests (\(bookedBeforeKill) booked before the kill, \(whileDown) "
                        + "accepted while no primary), promoted \(promoted - killed) after the kill, "
                        + "test took \(ContinuousClock.now - began)")

                for process in processes { await process.stop(signal: SIGTERM, timeout: .seconds(30)) }
                for worker in workers {
                    #expect(worker.exitStatus == 0, "\(worker.name):\n\(worker.output.suffix(2000))")
                }
            } catch {
                Issue.record("\(error)\n\(logs())")
            }
            for process in processes { await process.stop(signal: SIGKILL, timeout: .seconds(10)) }
            await client.shutdown()
            await redis.deleteKeys(withPrefix: prefix)
            redis.close()
            await pair.stop()
            try? FileManager.default.removeItem(at: directory)
        }

        /// A session that finds its server read-only (SQLSTATE 25006: a node demoted, or reached
        /// without `target_session_attrs=read-write`) is a failover in progress, not a bad message:
        /// the worker spends no attempt, drops the connection, and opens new ones until one can write.
        @Test func aReadOnlyServerCostsNoAttemptAndTheWorkerReconnectsUntilItCanWrite() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 0)
            let admin = PostgresClient(
                configuration: PostgresConfiguration(
                    connectionString: stack.database.url, applicationName: "leasehold-tests",
                    targetSessionAttributes: "any"),
                size: 1)
            do {
                let slot = try #require(try await stack.seed(slots: 1, users: 1).first)
                try await admin.query(
                    "ALTER DATABASE \(unescaped: stack.database.name) SET default_transaction_read_only = on")
                // target_session_attrs=any: libpq would refuse the read-only server otherwise.
                let url =
                    stack.database.url + (stack.database.url.contains("?") ? "&" : "?") + "target_session_attrs=any"
                let worker = try stack.startWorker(
                    name: "worker-0",
                    environment: [
                        "POSTGRES_URL": url, "LEASEHOLD_RETRY_BASE_MS": "50", "LEASEHOLD_RETRY_MAX_DELAY_MS": "100",
                        "LEASEHOLD_RETRY_MAX_ATTEMPTS": "2",
                    ])
                try await poll("the worker made its group", timeout: .seconds(60)) {
                    let groups = try? await stack.redis.send("XINFO", "GROUPS", stack.stream("bookings"))
                    return groups?.array?.isEmpty == false
                }
                #expect(try await stack.book(requestID: "ro-1", userID: 1, slotID: slot).status == 202)
                try await poll("the worker meets the read-only server", timeout: .seconds(30)) {
                    worker.output.contains("25006")
                }
                // Several tries, far past the retry budget (two attempts 50–100 ms apart).
                try await Task.sleep(for: .seconds(2))
                let keys = RedisKeys(prefix: stack.prefix)
                #expect(
                    try await stack.redis.send("ZCARD", keys.retrySchedule(for: keys.stream("bookings"))).int == 0,
                    "no attempt spent")
                #expect(try await stack.pendingCount("bookings") == 1, "the entry stays with the worker")

                try await admin.query(
                    "ALTER DATABASE \(unescaped: stack.database.name) RESET default_transaction_read_only")
                #expect(try await stack.outcome(of: "ro-1", timeout: .seconds(30)) == "booked")
                let output = worker.output
                #expect(output.contains("server reachable again"), "\(output)")
                #expect(!output.contains("retry scheduled") && !output.contains("dead-letter"), "\(output)")
                let deadLetters = try await admin.query("SELECT count(*) FROM dead_letters").single()
                    .decode(Int64.self, at: 0)
                #expect(deadLetters == 0)
            } catch {
                Issue.record("\(error)\n\(stack.workers.map(\.output).joined(separator: "\n"))")
            }
            await admin.close()
            await stack.shutdown()
        }

        /// How many of `outcomes` are `booked`.
        static func booked(_ outcomes: [String: [String: Any]]) -> Int {
            outcomes.values.filter { $0["status"] as? String == "booked" }.count
        }

        /// Polls `condition` every 100 ms until it holds; past `timeout` it throws.
        func poll(_ what: String, timeout: Duration, _ condition: () async throws -> Bool) async throws {
            let deadline = ContinuousClock.now + timeout
            while try await !condition() {
                guard ContinuousClock.now < deadline else { throw TestSetupError("not true after \(timeout): \(what)") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}
