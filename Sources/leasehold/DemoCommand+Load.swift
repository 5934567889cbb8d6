import ArgumentParser
import Foundation
import LeaseholdLoadTest
import LeaseholdLocalStack
import LeaseholdQueue

// The demo's load: the load test (or the overload run) against the running stack, the chaos
// schedule beside it, the checks after it, and the accounting of CPU per role.

extension DemoCommand {
    /// The load test, with the chaos schedule or the overload flood when asked, its report, the
    /// chaos checks and, with --keep-running, the wait for a signal. Returns whether it all passed.
    func drive(_ system: DemoSystem) async throws -> Bool {
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
    struct ChaosRun {
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
    func startChaos(
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
    static func applyOverloadDefaults(to load: inout LoadTestOptions) {
        if load.duration == nil { load.duration = 60 }
        if load.rate == nil { load.rate = Self.overloadRate }
        if load.recoveryRate == nil { load.recoveryRate = ((load.rate ?? Self.overloadRate) / 6).rounded() }
        load.concurrency = max(load.concurrency, Self.overloadConcurrency)
    }

    /// The load test the flags describe, against the demo's ingresses with its secrets; under
    /// --overload with `/healthz` and `/readyz` of every ingress and worker probed.
    func loadConfiguration(
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
    func runLoadTest(
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
    func checkChaos(_ run: ChaosRun, report: LoadTestReport, system: DemoSystem) async throws -> Bool {
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
    func runUntilSignal(_ system: DemoSystem, redisShards: Int?) async {
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
    func accountedRoles(
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
}
