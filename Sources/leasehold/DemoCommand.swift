import ArgumentParser
import Foundation
import LeaseholdLoadTest
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRuntime
import Logging
import Synchronization

/// `leasehold demo`: the whole system on one machine, driven by a load test.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract:
            "Run the embedded stack, ingress, workers and a supervisor as separate processes, and a load test.",
        discussion: """
            Starts PostgreSQL and Redis as child processes (the embedded default, data in --dir), migrates, \
            starts `leasehold ingress` ×--ingresses (default 2), `leasehold worker` ×--workers (default 2) and \
            `leasehold supervisor` as separate processes of this binary, waits until every ingress answers \
            and every worker has warmed up its connections and reads, drives a load test of concurrent \
            bookings with a progress line (the load flags are those of `leasehold loadtest`: --input, --requests \
            or --duration, --rate, --plot, ...; the demo supplies the URLs, the API token and the Telegram \
            secret), prints the report (with the pgbench comparison), then stops everything (SIGTERM, in order). \
            --overload floods the system at about three times what it processes (see its help) and reports \
            how it sheds and recovers. --ingress-only starts no worker and no supervisor and measures ingress alone (accepted requests per \
            second; the run's entries are removed from Redis afterwards). --redis-cluster N runs Redis as a local \
            Redis Cluster of N masters (and --redis-cluster-replicas per master) instead of one node: every role \
            gets every node in REDIS_URL and LEASEHOLD_REDIS_SHARDS (N unless set), as on a cluster in \
            production. The report adds, for the measured \
            interval (first request sent to last outcome committed; with --ingress-only to the last answer), the \
            CPU seconds of each role from /proc (ingress, worker, supervisor, PostgreSQL = the postmaster and \
            its backends, Redis, the demo itself as load generator) and per committed outcome (with \
            --ingress-only per accepted request), and the peak resident set size of the ingress and worker \
            processes (VmRSS sampled every 250 ms). --keep-running leaves the system up until Ctrl-C or SIGTERM \
            and prints the URLs. Ctrl-C or SIGTERM at any earlier point stops every process the demo started \
            and exits with 128 + the signal (130, 143). Role logs go to <dir>/logs/. The roles inherit this process's environment (e.g. \
            LEASEHOLD_WORKER_CONCURRENCY), with their URLs and secrets set by the demo; migrations come from \
            ./Migrations (env: LEASEHOLD_MIGRATIONS_DIR), the PostgreSQL binaries and pgbench from the newest \
            /usr/lib/postgresql/*/bin (env: LEASEHOLD_PG_BINDIR). Exit status: that of the load test (0 passed, \
            1 an invariant failed, 2 it could not run), 64 for bad options.
            """
    )

    @Option(help: "Data and log directory.")
    var dir: String = ".leasehold/demo"

    @Option(help: "Ingress processes, 1...64.")
    var ingresses: Int = 2

    @Option(help: "Worker processes, 1...64 (default: 2; --ingress-only starts none).")
    var workers: Int?

    @Option(
        help: """
            Run Redis as a local Redis Cluster of this many masters, 3...16, instead of one node (roles get \
            every node, and LEASEHOLD_REDIS_SHARDS = the masters unless set).
            """)
    var redisCluster: Int?

    @Option(help: "Replicas per master with --redis-cluster, 0...2 (default 0).")
    var redisClusterReplicas: Int?

    @OptionGroup var load: LoadTestOptions

    /// Worker processes to start.
    var workerCount: Int { load.ingressOnly ? 0 : workers ?? (chaos ? 3 : 2) }

    /// Supervisor processes to start (one leads; under chaos the other takes over when it dies).
    var supervisorCount: Int { load.ingressOnly ? 0 : (chaos ? 2 : 1) }

    /// Notifier processes to start: two under chaos (one may be killed), none otherwise.
    var notifierCount: Int { chaos ? 2 : 0 }

    func validate() throws {
        guard (1...64).contains(ingresses) else { throw ValidationError("--ingresses must be 1...64") }
        if chaos && load.ingressOnly { throw ValidationError("--chaos needs workers; leave out --ingress-only") }
        if !overload { try load.validateRecovery() }
        if overload {
            if chaos { throw ValidationError("--overload and --chaos are separate runs: give one of them") }
            if load.ingressOnly {
                throw ValidationError("--overload measures recovery with workers; leave out --ingress-only")
            }
            if load.requests != nil { throw ValidationError("--overload runs for a --duration; leave out --requests") }
        }
        if seed != nil && !chaos { throw ValidationError("--seed is for --chaos") }
        if let redisCluster {
            guard (3...16).contains(redisCluster) else { throw ValidationError("--redis-cluster must be 3...16") }
            if chaos { throw ValidationError("--chaos kills the one Redis node; leave out --redis-cluster") }
        }
        if let redisClusterReplicas {
            guard redisCluster != nil else { throw ValidationError("--redis-cluster-replicas needs --redis-cluster") }
            guard (0...2).contains(redisClusterReplicas) else {
                throw ValidationError("--redis-cluster-replicas must be 0...2")
            }
        }
        if let workers {
            if load.ingressOnly {
                throw ValidationError("--ingress-only starts no worker; leave out --workers")
            }
            guard (1...64).contains(workers) else {
                throw ValidationError("--workers must be 1...64 (--ingress-only measures ingress with no worker)")
            }
        }
    }

    @Flag(help: "Keep the system running after the load test, until Ctrl-C or SIGTERM.")
    var keepRunning = false

    @Flag(
        help: """
            Chaos: 3 workers, 2 supervisors and 2 notifiers (replying to a fake Bot API on loopback) under \
            paced load (default --rate 100 --duration 120 --input mixed) and YooKassa notifications while faults \
            (kill -9 of a worker, an ingress, the supervisor leader, a notifier; SIGSTOP of a worker past the \
            lease and the visibility timeout; kill -9 of Redis; PostgreSQL immediate shutdown; kill -9 of \
            everything) hit at random moments, reproducible with --seed; then checks that nothing was lost or \
            done twice and that every Telegram user got one reply per request.
            """)
    var chaos = false

    @Option(help: "Seed of the chaos schedule (default: random; the run prints it).")
    var seed: UInt64?

    @Flag(
        help: """
            Overload benchmark: an open-loop flood (default --rate 6000 --duration 60, about three times what \
            this 2-core machine processes, from at least 256 clients), then a recovery phase (default \
            --recovery-rate of a sixth of --rate for --recovery-duration 20) with the ingress high-water mark at \
            20000 entries (unless LEASEHOLD_STREAM_HIGH_WATER_MARK is set); /healthz and /readyz of every ingress \
            and worker are probed every 100 ms throughout. Reports accepted, refused (503), p99 of the accepted, \
            the peak RSS of ingress and worker, how soon after the flood the system was back at full \
            throughput, each probe's answer times, and pgbench beside it (on at most 20000 transactions). Fails \
            (exit 1) when an accepted request was lost or processed twice, a 503 came without Retry-After or a \
            request went unanswered, a probe was answered anything but 200, the system did not recover before \
            the run ended, or a peak RSS reached 100 MiB; the time targets (probes within 100 ms, recovery within \
            5 s) are reported as met or not.
            """)
    var overload = false

    /// The overload run's flood, unless given: about three times what this machine processes.
    static let overloadRate = 6000.0
    /// The clients an overload run sends from at least: enough in flight for the flood's rate
    /// while answers slow down.
    static let overloadConcurrency = 256

    func run() async throws {
        // Under chaos the notifiers deliver the bots' replies to a fake Bot API on loopback, which
        // records every call for the checks; otherwise no notifier runs.
        if chaos {
            try await FakeBotAPI.withServer { api in try await runStack(botAPI: api) }
        } else {
            try await runStack(botAPI: nil)
        }
    }

    /// The demo in its steps: the servers, what the roles are given, the migrations, the roles,
    /// the wait until they are ready, then the load with its report and checks (``drive(_:)``).
    /// Every process is stopped at the end, also when a step fails.
    private func runStack(botAPI: FakeBotAPI?) async throws {
        var common = CommonOptions()
        common.logLevelFlag = "warning"
        let logger = try common.bootstrapLogging(label: "leasehold.demo")
        let root = URL(fileURLWithPath: dir)
        let logs = root.appendingPathComponent("logs")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        chmod(root.path, 0o755)

        let (servers, signals) = try await startServers(root: root, logger: logger)
        let setup = roleSetup(servers, botAPI: botAPI)
        let roles = RoleProcesses(
            executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
            environment: setup.environment)
        signals.track(roles)
        let passed: Bool
        do {
            let client = PostgresClient(
                configuration: PostgresConfiguration(connectionString: servers.stack.postgresURL), size: 1)
            _ = try await Migrator(client: client, logger: logger).migrate(
                try Migration.load(from: Migration.defaultDirectory()))
            await client.close()

            let endpoints = try startRoles(roles, logs: logs)
            try await waitUntilReady(roles, endpoints)
            Self.say(
                "running: ingress ×\(ingresses) (\(endpoints.urls.joined(separator: ", "))), "
                    + (load.ingressOnly
                        ? "no worker, no supervisor (ingress only)"
                        : "worker ×\(workerCount), supervisor ×\(supervisorCount)")
                    + (notifierCount > 0
                        ? ", notifier ×\(notifierCount) (to a fake Bot API at \(botAPI?.url ?? ""))" : "")
                    + "; logs in \(logs.path)")
            passed = try await drive(
                DemoSystem(
                    servers: servers, setup: setup, roles: roles, endpoints: endpoints, botAPI: botAPI,
                    signals: signals))
        } catch {
            await Self.stopAll(roles, stack: servers.stack, cluster: servers.cluster)
            throw error
        }
        await Self.stopAll(roles, stack: servers.stack, cluster: servers.cluster)
        if !passed { throw ExitCode(1) }
    }

    /// PostgreSQL and Redis as the demo runs them (Redis as a cluster with --redis-cluster).
    private struct Servers {
        var stack: LocalStack
        var cluster: LocalRedisCluster?
        /// What every role gets as `REDIS_URL`: the cluster's nodes, or the one Redis.
        var redisURL: String { cluster?.url ?? stack.redisURL }
    }

    /// What every role is given: its environment, and the secrets in it the load test needs.
    private struct RoleSetup {
        var environment: [String: String]
        var token: String
        var telegramSecret: String
        /// The shard count the demo picked itself (a cluster, nothing set), for its own checks.
        var shardsSetHere: Int?
    }

    /// Where the roles answer: each ingress's base URL, each worker's health port (under
    /// --overload only, for the probes).
    private struct Endpoints {
        var urls: [String]
        var workerPorts: [Int?]
    }

    /// The system once it runs, as the load, the chaos schedule and the checks reach it.
    private struct DemoSystem {
        var servers: Servers
        var setup: RoleSetup
        var roles: RoleProcesses
        var endpoints: Endpoints
        var botAPI: FakeBotAPI?
        var signals: DemoSignals
    }

    /// Starts PostgreSQL and Redis (or a Redis Cluster), with the signal handling that stops them
    /// and every role when the demo is interrupted.
    private func startServers(root: URL, logger: Logger) async throws -> (Servers, DemoSignals) {
        Self.say("starting PostgreSQL and Redis (data in \(root.appendingPathComponent("local").path))")
        let stack = try LocalStack(
            options: LocalStackOptions(directory: root.appendingPathComponent("local")), logger: logger)
        // The roles, PostgreSQL and Redis run in process groups of their own, so a terminal's
        // Ctrl-C does not reach them: a signal to the demo stops them all, then the demo exits.
        let signals = DemoSignals()
        signals.onInterrupt { signal, roles in
            Self.say("interrupted (signal \(signal)); stopping everything")
            await Self.stopAll(roles, stack: stack)
            Foundation.exit(128 + signal)
        }
        try await stack.start()
        // A cluster's nodes die with this process (its watchdog), so a signal needs no more.
        guard let masters = redisCluster else { return (Servers(stack: stack), signals) }
        let replicas = redisClusterReplicas ?? 0
        Self.say("starting a Redis Cluster: \(masters) masters, \(replicas) replicas each")
        do {
            let cluster = try await LocalRedisCluster.start(
                masters: masters, replicasPerMaster: replicas,
                directory: root.appendingPathComponent("local/redis-cluster"))
            return (Servers(stack: stack, cluster: cluster), signals)
        } catch {
            await stack.stop()
            throw error
        }
    }

    /// The roles' environment: this process's, with the servers' URLs, fresh secrets and the
    /// settings of the run (chaos, overload, the fake Bot API) over it.
    private func roleSetup(_ servers: Servers, botAPI: FakeBotAPI?) -> RoleSetup {
        let token = UUID().uuidString
        let telegramSecret = UUID().uuidString
        var environment = ProcessInfo.processInfo.environment
        environment["POSTGRES_URL"] = servers.stack.postgresURL
        environment["REDIS_URL"] = servers.redisURL
        var shardsSetHere: Int?
        if let masters = redisCluster, (environment["LEASEHOLD_REDIS_SHARDS"] ?? "").isEmpty {
            environment["LEASEHOLD_REDIS_SHARDS"] = String(masters)
            shardsSetHere = masters
        }
        environment["LEASEHOLD_API_TOKEN"] = token
        environment["TELEGRAM_WEBHOOK_SECRET"] = telegramSecret
        environment["LOG_LEVEL"] = "info"
        // Every process shares this machine's cores: an ingress with one event loop thread (its
        // handlers and Redis run on a reactor thread of their own) measured cheaper per request
        // than one with a thread per core.
        if environment["LEASEHOLD_INGRESS_EVENT_LOOP_THREADS"] == nil {
            environment["LEASEHOLD_INGRESS_EVENT_LOOP_THREADS"] = "1"
        }
        if chaos { environment.merge(ChaosSchedule.environment) { _, chaos in chaos } }
        // The flood fills the backlog to the mark in seconds, and the recovery phase drains it.
        if overload && (environment["LEASEHOLD_STREAM_HIGH_WATER_MARK"] ?? "").isEmpty {
            environment["LEASEHOLD_STREAM_HIGH_WATER_MARK"] = "20000"
        }
        if let botAPI {
            environment["TELEGRAM_API_BASE_URL"] = botAPI.url
            environment["TELEGRAM_BOT_TOKEN"] = FakeBotAPI.token
        }
        return RoleSetup(
            environment: environment, token: token, telegramSecret: telegramSecret, shardsSetHere: shardsSetHere)
    }

    /// Starts ingress ×--ingresses on ports of their own, then the workers, the supervisors and
    /// the notifiers; their logs go to `logs`.
    private func startRoles(_ roles: RoleProcesses, logs: URL) throws -> Endpoints {
        let ports = try (0..<ingresses).map { _ in try freeLoopbackPort() }
        for (index, port) in ports.enumerated() {
            try roles.start(
                .init(
                    name: "ingress-\(index)",
                    arguments: ["ingress", "--host", "127.0.0.1", "--port", String(port)],
                    log: logs.appendingPathComponent("ingress-\(index).log")))
        }
        // Under --overload each worker serves /healthz and /readyz for the probes.
        let workerPorts = try (0..<workerCount).map { _ in overload ? try freeLoopbackPort() : nil }
        for (index, port) in workerPorts.enumerated() {
            try roles.start(
                .init(
                    name: "worker-\(index)", arguments: ["worker", "--consumer-name", "demo-worker-\(index)"],
                    log: logs.appendingPathComponent("worker-\(index).log"),
                    environment: port.map {
                        ["LEASEHOLD_METRICS_PORT": String($0), "LEASEHOLD_METRICS_HOST": "127.0.0.1"]
                    }
                        ?? [:]))
        }
        for index in 0..<supervisorCount {
            try roles.start(
                .init(
                    name: "supervisor-\(index)", arguments: ["supervisor"],
                    log: logs.appendingPathComponent("supervisor-\(index).log")))
        }
        for index in 0..<notifierCount {
            try roles.start(
                .init(
                    name: "notifier-\(index)", arguments: ["notifier", "--name", "demo-notifier-\(index)"],
                    log: logs.appendingPathComponent("notifier-\(index).log")))
        }
        return Endpoints(urls: ports.map { "http://127.0.0.1:\($0)" }, workerPorts: workerPorts)
    }

    /// Waits (60 s at most for each step) until every ingress answers `/healthz`, then until
    /// every worker has opened and warmed up its connections and reads (its `worker started`
    /// line), so the load does not begin while the workers are still starting: the first
    /// second's latencies would measure the demo's start, not the system. A role that exits
    /// meanwhile, or a step that runs out of time, is a validation failure naming it and its log.
    private func waitUntilReady(_ roles: RoleProcesses, _ endpoints: Endpoints) async throws {
        do {
            try await roles.waitUntilAnswering(endpoints.urls.map { $0 + "/healthz" }, status: IngressProbe.status)
            try await roles.waitForOutput("worker started", from: roles.named("worker-"))
            // The probes start with the load: every worker's /readyz answers 200 first (the
            // `worker started` line comes a moment before a worker counts itself as reading).
            try await roles.waitUntilAnswering(
                endpoints.workerPorts.compactMap { $0.map { "http://127.0.0.1:\($0)/readyz" } },
                status: IngressProbe.status)
        } catch let error as RoleProcessError {
            if case .silent(let name, _, let log) = error {
                throw ValidationError("\(name) did not start reading within 60 s; see \(log.path)")
            }
            throw ValidationError(error.description)
        }
    }

    /// The load test, with the chaos schedule or the overload flood when asked, its report, the
    /// chaos checks and, with --keep-running, the wait for a signal. Returns whether it all passed.
    private func drive(_ system: DemoSystem) async throws -> Bool {
        let accounting = ProcessAccounting(
            roles: await accountedRoles(system.roles, stack: system.servers.stack, cluster: system.servers.cluster))
        let progress = ProgressPrinter()
        var load = self.load
        let environment = system.setup.environment
        let redisPrefix = Settings.Common.redisPrefix.resolve(nil, environment: environment)
        // The roles read LEASEHOLD_REDIS_SHARDS from the environment they inherit; so do the
        // checks and the clean-up here.
        let redisShards = try Settings.Common.redisShards.resolve(system.setup.shardsSetHere, environment: environment)
        let redisKeys = RedisKeys(prefix: redisPrefix, shards: redisShards)
        var chaosRun: ChaosRun?
        if chaos { chaosRun = try await startChaos(system, load: &load, redisPrefix: redisPrefix, keys: redisKeys) }
        if overload { Self.applyOverloadDefaults(to: &load) }
        let configuration = loadConfiguration(load, system, redisPrefix: redisPrefix, redisShards: redisShards)
        let report = try await runLoadTest(configuration, load: load, progress: progress, accounting: accounting)
        var chaosPassed = true
        if let chaosRun { chaosPassed = try await checkChaos(chaosRun, report: report, system: system) }
        if keepRunning { await runUntilSignal(system, redisShards: redisShards) }
        return report.passed && chaosPassed
    }

    /// A chaos run under way beside the load: the fault schedule, the payments and the poison
    /// messages, each in a task of its own.
    private struct ChaosRun {
        /// When the run began: the dead letters since are its own.
        var start: Date
        var keys: RedisKeys
        var faults: Task<[FaultRecord], Never>
        var payments: PaymentChaosLoad
        var sending: Task<PaymentChaosLoad.Sent, Never>
        var poison: Task<Set<String>, Never>
    }

    /// Sets the chaos run's load defaults (paced mixed input, no pgbench), prepares the payments
    /// and starts the faults, the payments and the poison messages.
    private func startChaos(
        _ system: DemoSystem, load: inout LoadTestOptions, redisPrefix: String, keys: RedisKeys
    ) async throws -> ChaosRun {
        let start = Date()
        if load.requests == nil && load.duration == nil { load.duration = 120 }
        if load.rate == nil { load.rate = 100 }
        if load.input == nil { load.input = .mixed }
        load.noPgbench = true
        let seed = self.seed ?? UInt64.random(in: 1...UInt64(UInt32.max))
        let stack = system.servers.stack
        let schedule = ChaosSchedule(
            seed: seed, spacing: 5...12, roles: system.roles, stack: stack, redisURL: system.servers.redisURL,
            redisPrefix: redisPrefix, say: { Self.say($0) })
        let seconds = load.duration ?? 120
        let until = ContinuousClock.now + .seconds(seconds)
        // Payments beside the bookings: one per second, for users of their own.
        let stamp = Int64(Date().timeIntervalSince1970) % 100_000
        let payments = PaymentChaosLoad(
            payments: max(10, seconds), run: "\(stamp)-\(seed)", firstUser: 3_000_000_000 + stamp * 10_000,
            ingressURLs: system.endpoints.urls, postgresURL: stack.postgresURL, seed: seed)
        try await payments.prepare()
        Self.say(
            "chaos: seed \(seed) (repeat the run with --seed \(seed)); \(payments.payments) payments, "
                + "3 YooKassa notifications each, and 5 poison messages, beside the bookings")
        let poison = PoisonMessages(count: 5, seed: seed, redisURL: system.servers.redisURL, keys: keys)
        return ChaosRun(
            start: start, keys: keys, faults: Task { await schedule.run(until: until) }, payments: payments,
            sending: Task { await payments.send(over: .seconds(seconds), giveUpAfter: .seconds(90)) },
            poison: Task { await poison.send(over: .seconds(seconds)) })
    }

    /// --overload's defaults: the flood's duration and rate, the recovery rate, enough clients.
    private static func applyOverloadDefaults(to load: inout LoadTestOptions) {
        if load.duration == nil { load.duration = 60 }
        if load.rate == nil { load.rate = Self.overloadRate }
        if load.recoveryRate == nil { load.recoveryRate = ((load.rate ?? Self.overloadRate) / 6).rounded() }
        load.concurrency = max(load.concurrency, Self.overloadConcurrency)
    }

    /// The load test the flags describe, against the demo's ingresses with its secrets; under
    /// --overload with `/healthz` and `/readyz` of every ingress and worker probed.
    private func loadConfiguration(
        _ load: LoadTestOptions, _ system: DemoSystem, redisPrefix: String, redisShards: Int?
    ) -> LoadTestConfiguration {
        let stack = system.servers.stack
        let urls = system.endpoints.urls
        var configuration = load.configuration(
            urls: urls, apiToken: system.setup.token, telegramSecret: system.setup.telegramSecret,
            postgresURL: stack.postgresURL, postgresLog: stack.postgresLog.path, redisURL: system.servers.redisURL,
            redisPrefix: redisPrefix, redisShards: redisShards)
        guard overload else { return configuration }
        for (index, url) in urls.enumerated() {
            configuration.probes += ["healthz", "readyz"].map {
                HealthProbe.Target(name: "ingress-\(index) /\($0)", url: "\(url)/\($0)")
            }
        }
        for (index, port) in system.endpoints.workerPorts.enumerated() {
            guard let port else { continue }
            configuration.probes += ["healthz", "readyz"].map {
                HealthProbe.Target(name: "worker-\(index) /\($0)", url: "http://127.0.0.1:\(port)/\($0)")
            }
        }
        let flood = "\(LoadTest.number(load.rate ?? 0))/s for \(load.duration ?? 0) s"
        let recovery = "\(LoadTest.number(load.recoveryRate ?? 0))/s for \(load.recoveryDuration ?? 20) s"
        let mark =
            system.setup.environment["LEASEHOLD_STREAM_HIGH_WATER_MARK"]
            ?? String(Settings.Ingress.highWaterMark.defaultValue)
        Self.say(
            "overload: \(flood) from \(load.concurrency) clients, then \(recovery); high-water mark \(mark); "
                + "probing \(configuration.probes.count) health endpoints every 100 ms")
        return configuration
    }

    /// Runs the load test and prints its report (with the CPU figures, and the plot when asked).
    /// A load test that cannot run is exit status 2.
    private func runLoadTest(
        _ configuration: LoadTestConfiguration, load: LoadTestOptions, progress: ProgressPrinter,
        accounting: ProcessAccounting
    ) async throws -> LoadTestReport {
        var report: LoadTestReport
        do {
            report = try await LoadTest(configuration: configuration, progress: progress, measurement: accounting)
                .run()
        } catch {
            progress.finish()
            Self.say("error: \(error)")
            throw ExitCode(2)  // the caller stops everything
        }
        // Under chaos the processes are killed and started anew, so the ones measured at the
        // start are not the ones that did the work: no CPU figures rather than wrong ones.
        report.processes =
            chaos
            ? nil
            : report.ingressOnly
                ? accounting.usage(count: report.accepted, basis: ProcessUsage.acceptedRequests)
                : accounting.usage(
                    count: report.completed + report.unansweredButProcessed, basis: ProcessUsage.committedOutcomes)
        report.checkOverloadMemory()
        load.writePlot(report, progress: progress)
        print(load.json ? report.json : report.table)
        // Out before the progress notes on standard error that follow (a pipe buffers
        // standard output, and the two would interleave).
        fflush(nil)
        return report
    }

    /// Once the load has ended: waits for the faults, the payments and the poison messages to
    /// settle, runs the chaos checks and prints the faults and the checks. Returns whether the
    /// checks passed.
    private func checkChaos(_ run: ChaosRun, report: LoadTestReport, system: DemoSystem) async throws -> Bool {
        let postgresURL = system.servers.stack.postgresURL
        let faults = await run.faults.value
        // The notifications still being retried settle first, so the checks run once.
        let sent = await run.sending.value
        let poison = await run.poison.value
        var checks = try await ChaosChecks.run(
            redisURL: system.servers.redisURL, keys: run.keys, postgresURL: postgresURL, poison: poison,
            since: run.start, timeout: .seconds(60))
        print(
            "payments: \(run.payments.payments), notifications delivered \(sent.delivered), "
                + "attempts sent again \(sent.retried), abandoned \(sent.abandoned)")
        checks.append(
            .init(
                name: "every notification answered 200 in the end", passed: sent.abandoned == 0,
                detail: "\(sent.abandoned) abandoned"))
        checks += try await run.payments.check()
        if let botAPI = system.botAPI {
            checks += try await ReplyCheck.run(
                report: report, api: botAPI, postgresURL: postgresURL, timeout: .seconds(60))
        }
        let passed = checks.allSatisfy(\.passed)
        print("faults (\(faults.count)):")
        for fault in faults {
            print("  +\(fault.at.components.seconds) s  \(fault.fault.rawValue): \(fault.detail)")
        }
        print("chaos checks:")
        for check in checks {
            print("  \(check.passed ? "ok  " : "FAIL") \(check.name) — \(check.detail)")
        }
        print(passed && report.passed ? "CHAOS PASSED" : "CHAOS FAILED")
        return passed
    }

    /// --keep-running: prints how to reach the system, then waits for SIGINT or SIGTERM.
    private func runUntilSignal(_ system: DemoSystem, redisShards: Int?) async {
        Self.say(
            """
            still running; Ctrl-C or SIGTERM stops everything
            POSTGRES_URL=\(system.servers.stack.postgresURL)
            REDIS_URL=\(system.servers.redisURL)\(system.servers.cluster == nil ? "" : "\nLEASEHOLD_REDIS_SHARDS=\(redisShards ?? 1)")
            LEASEHOLD_API_TOKEN=\(system.setup.token)
            TELEGRAM_WEBHOOK_SECRET=\(system.setup.telegramSecret)
            ingress: \(system.endpoints.urls.joined(separator: " "))
            """)
        await system.signals.next()
    }

    /// The processes to account for, by role: every child this demo started, PostgreSQL with its
    /// backends, and this process (the load generator).
    private func accountedRoles(
        _ roles: RoleProcesses, stack: LocalStack, cluster: LocalRedisCluster?
    ) async -> [ProcessAccounting.Role] {
        func pids(_ prefix: String) -> [Int32] { roles.named(prefix).map(\.pid) }
        var accounted = [
            ProcessAccounting.Role(name: "ingress", pids: pids("ingress-")),
            ProcessAccounting.Role(name: "worker", pids: pids("worker-")),
            ProcessAccounting.Role(name: "supervisor", pids: pids("supervisor")),
        ].filter { !$0.pids.isEmpty }
        if let postmaster = await stack.postgresProcessID {
            accounted.append(
                .init(name: "postgresql", pids: [postmaster], includesChildren: true, sampleMemory: false))
        }
        if let cluster {
            accounted.append(.init(name: "redis", pids: cluster.processIDs))
        } else if let redis = await stack.redisProcessID {
            accounted.append(.init(name: "redis", pids: [redis]))
        }
        accounted.append(.init(name: "loadgen", pids: [getpid()]))
        return accounted
    }

    private static func say(_ text: String) {
        FileHandle.standardError.write(Data("==> \(text)\n".utf8))
    }

    /// Stops every role (SIGTERM, SIGKILL for those still running after 30 s), then the Redis
    /// Cluster, Redis and PostgreSQL. `roles` is `nil` when a signal came before any role started.
    private static func stopAll(_ roles: RoleProcesses?, stack: LocalStack, cluster: LocalRedisCluster? = nil) async {
        let names = roles?.all.map(\.name) ?? []
        Self.say("stopping \(names.joined(separator: ", ")) (SIGTERM), then Redis and PostgreSQL")
        await roles?.stopAll(timeout: .seconds(30))
        await cluster?.stop()
        await stack.stop()
    }
}

/// SIGINT and SIGTERM while the demo runs: by default they stop every process the demo started
/// and end it (exit 128 + the signal); while ``next()`` waits (`--keep-running`), the signal just
/// ends the wait.
final class DemoSignals: Sendable {
    /// What to do on a signal: gets the signal and the demo's roles (`nil` before they exist).
    typealias Interrupt = @Sendable (Int32, RoleProcesses?) async -> Void

    private struct State {
        var roles: RoleProcesses?
        var interrupt: Interrupt?
        var waiting: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())
    /// Set once in `init`, never changed: kept only so the sources live as long as this object.
    nonisolated(unsafe) private var sources: [any DispatchSourceSignal] = []

    init() {
        let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { [weak self] in self?.received(number) }
            source.resume()
            return source
        }
        self.sources = sources
    }

    /// What to do on a signal when nobody waits in ``next()``.
    func onInterrupt(_ interrupt: @escaping Interrupt) {
        state.withLock { $0.interrupt = interrupt }
    }

    /// The processes to stop on a signal: those started so far and any started later.
    func track(_ roles: RoleProcesses) {
        state.withLock { $0.roles = roles }
    }

    /// Waits for SIGINT or SIGTERM.
    func next() async {
        await withCheckedContinuation { continuation in
            state.withLock { $0.waiting = continuation }
        }
    }

    private func received(_ number: Int32) {
        let (waiting, interrupt, roles) = state.withLock { state in
            defer { state.waiting = nil }
            return (state.waiting, state.interrupt, state.roles)
        }
        if let waiting {
            waiting.resume()
        } else if let interrupt {
            Task { await interrupt(number, roles) }
        }
    }
}
