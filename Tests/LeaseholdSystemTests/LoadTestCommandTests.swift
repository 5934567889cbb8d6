import Foundation
import FoundationXML
import LeaseholdRedis
import LeaseholdTesting
import Testing

extension SystemTests {
    /// `leasehold loadtest` against a real multi-process stack: its JSON for both input shapes
    /// and for a timed run, its refusal of bad options, and its exit status when an invariant
    /// does not hold.
    @Suite("leasehold loadtest")
    struct LoadTestCommandTests {
        /// Runs `leasehold loadtest --json` against both ingress replicas of `stack`.
        private func loadtest(
            _ stack: ProcessStack, _ extra: [String] = [], shape: [String]? = nil, environment: [String: String] = [:]
        ) async throws -> (status: Int32, report: [String: Any], output: String) {
            let result = try await LeaseholdExecutable.run(
                ["loadtest", "--url", stack.ingressURL(0), "--url", stack.ingressURL(1), "--json"]
                    + (shape ?? ["--slots", "20", "--per-slot", "10", "--concurrency", "16"]) + extra,
                in: stack.directory, environment: stack.environment.merging(environment) { $1 },
                timeout: .seconds(300))
            // Standard output is the JSON document (pretty-printed: it starts with a line "{");
            // standard error, before it, has the progress.
            let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
            let start = try #require(lines.firstIndex(of: "{"), "no JSON in:\n\(result.output)")
            let json = lines[start...].joined(separator: "\n")
            let report = try #require(
                try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(result.output)")
            return (result.status, report, result.output)
        }

        private func invariants(_ report: [String: Any]) -> [[String: Any]] {
            report["invariants"] as? [[String: Any]] ?? []
        }

        private func count(_ stack: ProcessStack, _ sql: String) async throws -> Int {
            try await stack.postgres.query(.init(unsafeSQL: sql)).single().decode(Int.self, at: 0)
        }

        @Test func aHealthyRunReportsEveryInvariantAndPgbenchInJSON() async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 2)
            let (status, report, output) = try await loadtest(stack)
            #expect(status == 0, "\(output)")
            #expect(report["passed"] as? Bool == true)
            #expect(report["input"] as? String == "api")
            #expect(report["accepted"] as? Int == 200)
            #expect(report["completed"] as? Int == 200)
            #expect(report["statuses"] as? [String: Int] == ["202": 200])
            #expect((report["outcomes"] as? [String: Int]) == ["booked": 20, "slot_taken": 180])
            #expect(invariants(report).count == 5)
            #expect(invariants(report).allSatisfy { $0["passed"] as? Bool == true })
            let latency = report["endToEndLatency"] as? [String: Any]
            #expect((latency?["count"] as? Int) == 200)
            #expect((latency?["p99"] as? Double ?? 0) >= (latency?["p50"] as? Double ?? 0))
            let pgbench = report["pgbench"] as? [String: Any]
            #expect((pgbench?["tps"] as? Double ?? 0) > 0, "pgbench ran the same transaction in the same run")
            #expect((report["ratioToPgbench"] as? Double ?? 0) > 0)
            #expect(pgbench?["queryMode"] as? String == "simple", "statement by statement, as an application sends it")
            // pgbench booked its own 20 slots once each, like Leasehold did (same contention).
            #expect(try await count(stack, "SELECT count(*) FROM interviews WHERE message_key LIKE 'pgb:%'") == 20)
            // And in one round trip (leasehold_book), on 20 slots of its own, with the same outcomes.
            let function = report["pgbenchFunction"] as? [String: Any]
            #expect((function?["tps"] as? Double ?? 0) > 0, "pgbench ran the one-round-trip form in the same run")
            #expect((report["ratioToPgbenchFunction"] as? Double ?? 0) > 0)
            #expect(function?["queryMode"] as? String == "prepared", "prepared, as the worker sends it")
            #expect(try await count(stack, "SELECT count(*) FROM interviews WHERE message_key LIKE 'pgf:%'") == 20)
            let functionTransactions = Int64(function?["transactions"] as? Int ?? -1)
            #expect(
                try await count(stack, "SELECT count(*) FROM inbox WHERE message_key LIKE 'pgf:%'")
                    == functionTransactions)
            await stack.shutdown()
        }

        @Test func telegramCallbacksAreVerifiedThroughTheInboxAndRunsNeverShareUpdateIDs() async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 2)
            let plot = stack.directory.appendingPathComponent("latency.svg")
            var runs: [String] = []
            for _ in 0..<2 {
                let (status, report, output) = try await loadtest(
                    stack, ["--input", "telegram", "--no-pgbench", "--plot", plot.path])
                #expect(status == 0, "\(output)")
                #expect(report["passed"] as? Bool == true)
                #expect(report["input"] as? String == "telegram")
                #expect(report["accepted"] as? Int == 200)
                #expect(report["completed"] as? Int == 200)
                #expect(report["statuses"] as? [String: Int] == ["200": 200], "Telegram gets 200 with the answer")
                #expect((report["outcomes"] as? [String: Int]) == ["booked": 20, "slot_taken": 180])
                #expect(invariants(report).count == 5)
                #expect(invariants(report).allSatisfy { $0["passed"] as? Bool == true })
                #expect((report["endToEndLatency"] as? [String: Any])?["count"] as? Int == 200)
                runs.append(report["run"] as? String ?? "")
            }
            #expect(Set(runs).count == 2, "each run has its own number")
            // Every update went through the Telegram stream under its own tg:<update_id> key,
            // and got the bot's reply in the outbox.
            #expect(try await stack.streamLength("telegram") == 400)
            #expect(try await stack.streamLength("bookings") == 0)
            #expect(try await count(stack, "SELECT count(*) FROM inbox WHERE message_key LIKE 'tg:%'") == 400)
            #expect(
                try await count(
                    stack, "SELECT count(*) FROM outbox WHERE message_key LIKE 'tg:%' AND chat_id IS NOT NULL") == 400)

            // The plot of the last run: well-formed XML with every series drawn.
            let document = try XMLDocument(contentsOf: plot, options: [])
            #expect(document.rootElement()?.localName == "svg")
            var series: [String: Int] = [:]
            func walk(_ node: XMLNode) {
                // By name: on Linux, attribute(forName:) finds nothing in a default namespace.
                func attribute(_ name: String) -> String? {
                    (node as? XMLElement)?.attributes?.first { $0.name == name }?.stringValue
                }
                if (node as? XMLElement)?.localName == "polyline", let id = attribute("id") {
                    series[id] = (attribute("points") ?? "").split(separator: " ").count
                }
                node.children?.forEach(walk)
            }
            walk(try #require(document.rootElement()))
            #expect(
                Set(series.keys)
                    == ["http-p50", "http-p99", "e2e-p50", "e2e-p99", "accepted-rate", "committed-rate"])
            #expect(series.values.allSatisfy { $0 >= 1 }, "\(series)")
            await stack.shutdown()
        }

        /// `--input mixed` alternates the two shapes over the same slots: API requests and
        /// Telegram callbacks contend for each slot, and the verification finds both kinds of key.
        @Test func mixedInputAlternatesAPIRequestsAndTelegramCallbacksOnTheSameSlots() async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 2)
            let (status, report, output) = try await loadtest(stack, ["--input", "mixed", "--no-pgbench"])
            #expect(status == 0, "\(output)")
            #expect(report["passed"] as? Bool == true, "\(output)")
            #expect(report["input"] as? String == "mixed")
            #expect(report["accepted"] as? Int == 200)
            #expect(report["completed"] as? Int == 200)
            #expect(report["statuses"] as? [String: Int] == ["200": 100, "202": 100], "Telegram 200, the API 202")
            #expect((report["outcomes"] as? [String: Int]) == ["booked": 20, "slot_taken": 180])
            #expect(invariants(report).allSatisfy { $0["passed"] as? Bool == true })
            let run = try #require(report["run"] as? String)
            #expect(try await stack.streamLength("telegram") == 100)
            #expect(try await stack.streamLength("bookings") == 100)
            #expect(
                try await count(stack, "SELECT count(*) FROM inbox WHERE message_key LIKE 'api:lt-\(run)-%'") == 100)
            #expect(try await count(stack, "SELECT count(*) FROM inbox WHERE message_key LIKE 'tg:\(run)%'") == 100)
            // Every request's user gets the bot's reply, the API half too (the users have a chat).
            #expect(try await count(stack, "SELECT count(*) FROM outbox WHERE message_key LIKE 'tg:\(run)%'") == 100)
            #expect(
                try await count(stack, "SELECT count(*) FROM outbox WHERE message_key LIKE 'api:lt-\(run)-%'") == 100)
            await stack.shutdown()
        }

        @Test func aTimedRunAtAFixedRateSendsUntilTheDeadlineAndVerifiesEverything() async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 2)
            // 100 requests/s for 3 s: request i is due at i/100 s, so exactly 300 go out; 20
            // users over 5 slots, so users repeat and some are told already_booked.
            let (status, report, output) = try await loadtest(
                stack, ["--no-pgbench"],
                shape: [
                    "--slots", "5", "--per-slot", "10", "--users", "20", "--duration", "3", "--rate", "100",
                    "--concurrency", "16",
                ])
            #expect(status == 0, "\(output)")
            #expect(report["passed"] as? Bool == true)
            #expect(report["durationSeconds"] as? Double == 3)
            #expect(report["sent"] as? Int == 300)
            #expect(report["accepted"] as? Int == 300)
            #expect(report["completed"] as? Int == 300)
            #expect(report["users"] as? Int == 20)
            let outcomes = report["outcomes"] as? [String: Int] ?? [:]
            #expect(outcomes["booked"] == 5, "every slot booked once: \(outcomes)")
            #expect(outcomes.values.reduce(0, +) == 300)
            #expect(invariants(report).allSatisfy { $0["passed"] as? Bool == true })
            #expect((report["sendSeconds"] as? Double ?? 0) >= 2.9)
            // The progress line went to standard error as plain lines (not a terminal) and ended
            // with the final counts.
            #expect(output.contains("done  sent 300"), "\(output)")
            #expect(output.contains("accepted 300  completed 300"), "\(output)")
            #expect(!output.contains("\r"), "no in-place rewriting in a log")
            await stack.shutdown()
        }

        @Test func badOptionsAreRefusedClearlyBeforeAnythingIsSentOrCreated() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 1)
            let cases: [(arguments: [String], environment: [String: String], message: String)] = [
                (["--requests", "100", "--duration", "10"], [:], "give one of them"),
                (["--input", "telegram"], ["TELEGRAM_WEBHOOK_SECRET": ""], "TELEGRAM_WEBHOOK_SECRET"),
                (["--input", "api"], ["LEASEHOLD_API_TOKEN": ""], "LEASEHOLD_API_TOKEN"),
                (["--input", "sms"], [:], "sms"),
                (["--slots", "0"], [:], "--slots must be 1...1000000"),
                (["--users", "0"], [:], "--users must be"),
                (["--duration", "0"], [:], "--duration must be"),
                (["--rate", "0"], [:], "--rate must be"),
                (["--plot", "latency.png"], [:], "name the file *.svg"),
                (["--url", "ftp://127.0.0.1"], [:], "must start with http://"),
                (["--ingress-only"], ["REDIS_URL": ""], "--ingress-only needs the Redis URL"),
            ]
            for bad in cases {
                let result = try await LeaseholdExecutable.run(
                    ["loadtest", "--url", stack.ingressURL(0)] + bad.arguments, in: stack.directory,
                    environment: stack.environment.merging(bad.environment) { $1 })
                #expect(result.status == 64, "\(bad.arguments): \(result.output)")
                #expect(result.output.contains(bad.message), "\(bad.arguments): \(result.output)")
            }
            #expect(try await stack.streamLength("bookings") == 0)
            #expect(try await stack.streamLength("telegram") == 0)
            #expect(try await count(stack, "SELECT count(*) FROM users") == 0)
            #expect(try await count(stack, "SELECT count(*) FROM time_slots") == 0)
            await stack.shutdown()
        }

        @Test(arguments: [nil, 3] as [Int?])
        func ingressOnlyCountsAcceptedRequestsAndLeavesNothingOfTheRunInRedis(shards: Int?) async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 0, shards: shards)
            // An entry another producer added before the run: the clean-up must leave it alone.
            try await stack.redis.send(
                "XADD", stack.stream("bookings"), "*", "key", "api:not-the-load-test", "kind", "booking", "payload",
                "{}", "attempt", "1", "enqueued_at", "0")
            for input in ["api", "telegram"] {
                let (status, report, output) = try await loadtest(stack, ["--ingress-only", "--input", input])
                #expect(status == 0, "\(output)")
                #expect(report["passed"] as? Bool == true, "\(output)")
                #expect(report["ingressOnly"] as? Bool == true)
                #expect(report["sent"] as? Int == 200)
                #expect(report["accepted"] as? Int == 200)
                #expect(report["completed"] as? Int == 0, "no outcome is waited for")
                #expect((report["acceptedPerSecond"] as? Double ?? 0) > 0)
                #expect((report["httpLatency"] as? [String: Any])?["count"] as? Int == 200)
                #expect(report["pgbench"] == nil, "no pgbench in ingress-only mode")
                let removed = report["backlogRemoved"] as? [String: Any]
                #expect(removed?["streamEntries"] as? Int == 200, "\(report)")
                // API: a pending marker and a digest per accepted request; Telegram: none.
                #expect(removed?["keys"] as? Int == (input == "api" ? 400 : 0), "\(report)")
                #expect(
                    invariants(report).map { $0["name"] as? String }
                        == ["nothing of the run left in Redis", "no worker processed the run's requests"])
                #expect(output.contains("ingress only"), "\(output)")
            }
            // Nothing of either run is left: the foreign entry alone on the bookings stream, no
            // result or digest key.
            #expect(try await stack.streamLength("bookings") == 1)
            #expect(try await stack.streamLength("telegram") == 0)
            let remaining = try await stack.redis.send("XRANGE", stack.stream("bookings"), "-", "+")
            #expect(remaining.array?.first?.array?.last?.fieldMap?["key"]?.string == "api:not-the-load-test")
            for kind in ["result", "digest"] {
                let scan = try await stack.redis.send(
                    "SCAN", "0", "MATCH", "\(stack.prefix)*\(kind):*", "COUNT", 100_000)
                #expect(scan.array?.last?.array?.isEmpty == true, "\(kind) keys left: \(scan)")
            }
            // So a worker started now finds nothing of the runs to process.
            #expect(try await count(stack, "SELECT count(*) FROM inbox") == 0)
            await stack.shutdown()
        }

        /// A short, fixed-seed chaos run (the README's long one is the same with a longer
        /// --duration): seed 22 kills every role at once, crashes PostgreSQL, kills Redis and the
        /// supervisor leader while bookings and YooKassa notifications flow; afterwards nothing is
        /// lost, nothing is done twice (no slot, no payment), nothing is left pending or dead-lettered.
        @Test func aShortChaosRunLosesNothingAndDoesNothingTwice() async throws {
            let directory = try makeTemporaryDirectory("chaos")
            defer { try? FileManager.default.removeItem(at: directory) }
            // Seed 355 applies, within the first 70 s: PostgreSQL's crash, a notifier's kill -9, a
            // worker's SIGSTOP, Redis's kill -9, the leader's kill -9, then everything at once.
            let result = try await LeaseholdExecutable.run(
                [
                    "demo", "--dir", directory.appendingPathComponent("data").path, "--chaos", "--seed", "355",
                    "--duration", "90", "--rate", "50", "--slots", "50", "--per-slot", "10",
                ],
                in: directory, environment: ["LEASEHOLD_MIGRATIONS_DIR": LeaseholdExecutable.migrationsDirectory.path],
                timeout: .seconds(480))
            #expect(result.status == 0, "\(result.output.suffix(4_000))")
            #expect(result.output.contains("CHAOS PASSED"), "\(result.output.suffix(4_000))")
            for fault in [
                "kill -9 of every role at once", "PostgreSQL immediate shutdown", "kill -9 of Redis",
                "kill -9 of the supervisor leader", "kill -9 of a notifier", "SIGSTOP of a worker",
            ] {
                #expect(
                    result.output.contains("s  \(fault)"), "fault \(fault) missing:\n\(result.output.suffix(4_000))")
            }
            #expect(result.output.contains("chaos: seed 355"))
            // Both input shapes: the default under chaos is --input mixed.
            #expect(result.output.contains("POST /v1/bookings and Telegram callback updates, alternating"))
            for check in [
                "each payment.succeeded applied once", "subscription days equal the sum of succeeded payments",
                "every processed request queued one reply", "every reply delivered",
                "every Telegram user got exactly one reply per request",
                "the dead letters are exactly the poison messages sent",
            ] {
                #expect(result.output.contains("ok   \(check)"), "\(check):\n\(result.output.suffix(4_000))")
            }
        }

        /// The demo's children run in process groups of their own (a terminal's Ctrl-C reaches only
        /// the demo), so the demo itself must stop them when it is interrupted.
        @Test(arguments: [SIGINT, SIGTERM])
        func aSignalToTheDemoStopsEveryProcessItStarted(_ signal: Int32) async throws {
            let directory = try makeTemporaryDirectory("demo-signal")
            defer { try? FileManager.default.removeItem(at: directory) }
            let demo = try LeaseholdExecutable.start(
                [
                    "demo", "--dir", directory.appendingPathComponent("data").path, "--no-pgbench", "--duration", "300",
                    "--rate", "20", "--slots", "10", "--per-slot", "10",
                ],
                name: "demo", in: directory,
                environment: ["LEASEHOLD_MIGRATIONS_DIR": LeaseholdExecutable.migrationsDirectory.path])
            try await waitUntil(timeout: .seconds(120)) { demo.output.contains("==> running:") || !demo.isRunning }
            try #require(demo.isRunning, "\(demo.output)")
            /// Live (not zombie) processes whose parent is the demo.
            func children() -> [Int32] {
                let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
                return entries.compactMap(Int32.init).filter { pid in
                    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                        let close = stat.lastIndex(of: ")")
                    else { return false }
                    let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
                    return fields.count > 1 && fields[0] != "Z" && Int32(fields[1]) == demo.pid
                }
            }
            let started = children()
            // PostgreSQL, Redis, 2 ingress, 2 workers, a supervisor.
            #expect(started.count >= 7, "children of the demo: \(started)")

            demo.send(signal)
            try await waitUntil(timeout: .seconds(90)) { !demo.isRunning }
            #expect(demo.exitStatus == 128 + signal, "\(demo.output.suffix(2_000))")
            let left = started.filter { pid in
                guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
                return !stat.contains(") Z ")
            }
            #expect(left.isEmpty, "still running after the demo ended: \(left)")
            #expect(demo.output.contains("interrupted"), "\(demo.output.suffix(2_000))")
        }

        @Test func theDemoReportsCPUPerBookingAndPeakMemoryPerRole() async throws {
            let directory = try makeTemporaryDirectory("demo")
            defer { try? FileManager.default.removeItem(at: directory) }
            func demo(_ arguments: [String]) async throws -> (status: Int32, report: [String: Any], output: String) {
                let result = try await LeaseholdExecutable.run(
                    ["demo", "--dir", directory.path, "--json", "--no-pgbench", "--concurrency", "8"] + arguments,
                    in: directory,
                    environment: ["LEASEHOLD_MIGRATIONS_DIR": LeaseholdExecutable.migrationsDirectory.path],
                    timeout: .seconds(300))
                let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
                let start = try #require(lines.firstIndex(of: "{"), "no JSON in:\n\(result.output)")
                let json = lines[start...].prefix { $0 != "}" }.joined(separator: "\n") + "\n}"
                let report = try #require(
                    try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(result.output)")
                return (result.status, report, result.output)
            }
            func roles(_ report: [String: Any]) -> [String: [String: Any]] {
                (report["processes"] as? [String: Any])?["roles"] as? [String: [String: Any]] ?? [:]
            }

            // Bad process counts are refused before anything starts.
            for (arguments, message) in [
                (["--workers", "0"], "--workers must be 1...64"),
                (["--ingresses", "0"], "--ingresses must be 1...64"),
                (["--ingress-only", "--workers", "2"], "--ingress-only starts no worker"),
            ] {
                let result = try await LeaseholdExecutable.run(
                    ["demo", "--dir", directory.path] + arguments, in: directory)
                #expect(result.status == 64, "\(arguments): \(result.output)")
                #expect(result.output.contains(message), "\(arguments): \(result.output)")
            }

            // 1 ingress, 1 worker: CPU per role and per committed outcome, peak RSS.
            let (status, report, output) = try await demo([
                "--ingresses", "1", "--workers", "1", "--slots", "10", "--per-slot", "10",
            ])
            #expect(status == 0, "\(output)")
            #expect(report["completed"] as? Int == 100)
            let processes = try #require(report["processes"] as? [String: Any], "\(output)")
            #expect(processes["count"] as? Int == 100)
            #expect(processes["basis"] as? String == "committed outcomes")
            #expect((processes["intervalSeconds"] as? Double ?? 0) > 0)
            #expect((processes["totalCpuSeconds"] as? Double ?? 0) > 0)
            #expect((processes["totalCpuMsPerBooking"] as? Double ?? 0) > 0)
            let measured = roles(report)
            #expect(Set(measured.keys) == ["ingress", "worker", "supervisor", "postgresql", "redis", "loadgen"])
            for role in ["ingress", "worker", "postgresql", "loadgen"] {
                #expect((measured[role]?["cpuSeconds"] as? Double ?? 0) > 0, "\(role): \(processes)")
                #expect((measured[role]?["cpuMsPerBooking"] as? Double ?? 0) > 0, "\(role): \(processes)")
            }
            for role in ["ingress", "worker"] {
                #expect(measured[role]?["processes"] as? Int == 1)
                #expect((measured[role]?["peakRssMiB"] as? Double ?? 0) > 1, "\(role): \(processes)")
            }
            #expect(measured["postgresql"]?["peakRssMiB"] == nil, "shared memory makes PostgreSQL's RSS meaningless")

            // Ingress only: no worker, no supervisor, CPU per accepted request.
            let (onlyStatus, only, onlyOutput) = try await demo([
                "--ingress-only", "--ingresses", "2", "--slots", "10", "--per-slot", "10",
            ])
            #expect(onlyStatus == 0, "\(onlyOutput)")
            #expect(only["ingressOnly"] as? Bool == true)
            #expect(only["accepted"] as? Int == 100)
            #expect(onlyOutput.contains("no worker, no supervisor"), "\(onlyOutput)")
            let onlyProcesses = try #require(only["processes"] as? [String: Any], "\(onlyOutput)")
            #expect(onlyProcesses["basis"] as? String == "accepted requests")
            #expect(onlyProcesses["count"] as? Int == 100)
            #expect(Set(roles(only).keys) == ["ingress", "postgresql", "redis", "loadgen"])
            #expect(roles(only)["ingress"]?["processes"] as? Int == 2)
            #expect((roles(only)["ingress"]?["cpuSeconds"] as? Double ?? 0) > 0)
        }

        /// `--redis-cluster 3`: the demo starts a local Redis Cluster, every role runs on it in the
        /// sharded layout, the run passes every invariant, the three nodes are accounted as Redis,
        /// and none of them outlives the demo.
        @Test func theDemoRunsOnALocalRedisClusterAndStopsItAfterwards() async throws {
            let directory = try makeTemporaryDirectory("demo-cluster")
            defer { try? FileManager.default.removeItem(at: directory) }
            for (arguments, message) in [
                (["--redis-cluster", "2"], "--redis-cluster must be 3...16"),
                (["--redis-cluster-replicas", "1"], "--redis-cluster-replicas needs --redis-cluster"),
                (["--redis-cluster", "3", "--redis-cluster-replicas", "3"], "--redis-cluster-replicas must be 0...2"),
                (["--redis-cluster", "3", "--chaos"], "leave out --redis-cluster"),
            ] {
                let result = try await LeaseholdExecutable.run(
                    ["demo", "--dir", directory.path] + arguments, in: directory)
                #expect(result.status == 64, "\(arguments): \(result.output)")
                #expect(result.output.contains(message), "\(arguments): \(result.output)")
            }

            let data = directory.appendingPathComponent("data")
            let result = try await LeaseholdExecutable.run(
                [
                    "demo", "--dir", data.path, "--json", "--no-pgbench", "--concurrency", "8", "--redis-cluster", "3",
                    "--ingresses", "1", "--workers", "1", "--slots", "10", "--per-slot", "10",
                ],
                in: directory, environment: ["LEASEHOLD_MIGRATIONS_DIR": LeaseholdExecutable.migrationsDirectory.path],
                timeout: .seconds(300))
            #expect(result.status == 0, "\(result.output.suffix(3_000))")
            #expect(result.output.contains("starting a Redis Cluster: 3 masters"), "\(result.output.suffix(3_000))")
            let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
            let start = try #require(lines.firstIndex(of: "{"), "no JSON in:\n\(result.output.suffix(3_000))")
            let json = lines[start...].prefix { $0 != "}" }.joined(separator: "\n") + "\n}"
            let report = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            #expect(report["passed"] as? Bool == true, "\(report["invariants"] ?? "")")
            #expect(report["completed"] as? Int == 100)
            let roles = (report["processes"] as? [String: Any])?["roles"] as? [String: [String: Any]] ?? [:]
            #expect(roles["redis"]?["processes"] as? Int == 3, "the three nodes are accounted as Redis: \(roles)")
            // The workers' logs name the sharded streams they read.
            let workerLog = try String(
                contentsOf: data.appendingPathComponent("logs/worker-0.log"), encoding: .utf8)
            #expect(workerLog.contains("{bookings:2}"), "\(workerLog.suffix(2_000))")

            // Ingress only on a cluster: the clean-up finds every accepted entry on whichever
            // shard's master it landed (the demo's own checks use the shard count it gave the roles).
            let only = try await LeaseholdExecutable.run(
                [
                    "demo", "--dir", directory.appendingPathComponent("only").path, "--json", "--no-pgbench",
                    "--redis-cluster", "3", "--ingress-only", "--ingresses", "1", "--slots", "10", "--per-slot", "10",
                ],
                in: directory, environment: ["LEASEHOLD_MIGRATIONS_DIR": LeaseholdExecutable.migrationsDirectory.path],
                timeout: .seconds(300))
            #expect(only.status == 0, "\(only.output.suffix(3_000))")
            let onlyLines = only.output.split(separator: "\n", omittingEmptySubsequences: false)
            let onlyStart = try #require(onlyLines.firstIndex(of: "{"), "no JSON in:\n\(only.output.suffix(3_000))")
            let onlyJSON = onlyLines[onlyStart...].prefix { $0 != "}" }.joined(separator: "\n") + "\n}"
            let onlyReport = try #require(
                try JSONSerialization.jsonObject(with: Data(onlyJSON.utf8)) as? [String: Any])
            #expect(onlyReport["accepted"] as? Int == 100)
            let removed = onlyReport["backlogRemoved"] as? [String: Any]
            #expect(removed?["streamEntries"] as? Int == 100, "every shard cleaned: \(removed ?? [:])")
            #expect(removed?["keys"] as? Int == 200, "\(removed ?? [:])")

            let clusterDirectory = data.appendingPathComponent("local/redis-cluster").path
            let left = (try FileManager.default.contentsOfDirectory(atPath: "/proc")).compactMap { pid -> String? in
                guard Int32(pid) != nil,
                    let line = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
                    line.contains(clusterDirectory)
                else { return nil }
                return pid
            }
            #expect(left.isEmpty, "cluster nodes still running after the demo: \(left)")
        }

        @Test func aDoubleBookingMakesTheRunFailWithANonZeroExit() async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 2)
            // Break the database the way the incident did: no unique index, two active interviews
            // for one slot.
            let slot = try #require(try await stack.seed(slots: 1, users: 2).first)
            try await stack.postgres.query("DROP INDEX interviews_one_active_per_slot")
            for user in [1, 2] {
                try await stack.postgres.query(
                    "INSERT INTO interviews (user_id, time_slot_id, message_key) VALUES (\(Int64(user)), \(slot), \("manual-\(user)"))"
                )
            }
            let (status, report, output) = try await loadtest(stack, ["--no-pgbench"])
            #expect(status == 1, "\(output)")
            #expect(report["passed"] as? Bool == false)
            let failed = invariants(report).filter { $0["passed"] as? Bool == false }
            #expect(failed.map { $0["name"] as? String } == ["no slot has two active interviews"])
            await stack.shutdown()
        }

        @Test func aBookingToldButNotKeptMakesTheRunFail() async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 2)
            // Break the system the other way: every booking commits as told, then is silently
            // cancelled, so slots stay free and later requests are told booked too.
            try await stack.postgres.query(
                """
                CREATE FUNCTION lose_bookings() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    UPDATE interviews SET status = 'cancelled', ended_at = now() WHERE id = NEW.id;
                    RETURN NULL;
                END $$
                """)
            try await stack.postgres.query(
                "CREATE TRIGGER lose_bookings AFTER INSERT ON interviews FOR EACH ROW EXECUTE FUNCTION lose_bookings()")
            let (status, report, output) = try await loadtest(stack, ["--no-pgbench"])
            #expect(status == 1, "\(output)")
            #expect(report["passed"] as? Bool == false)
            #expect((report["outcomes"] as? [String: Int]) == ["booked": 200])
            let failed = invariants(report).filter { $0["passed"] as? Bool == false }
            #expect(
                failed.map { $0["name"] as? String } == ["each contended slot booked once, by the request told booked"])
            #expect((failed.first?["detail"] as? String ?? "").contains("20 slots disagree"), "\(failed)")
            await stack.shutdown()
        }
    }
}
