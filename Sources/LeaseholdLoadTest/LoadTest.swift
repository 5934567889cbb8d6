import AsyncHTTPClient
import Foundation
import Histogram
import LeaseholdCore
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdReactor
import LeaseholdRedis

/// Why a load test could not run (as opposed to an invariant that failed, which is a result).
public enum LoadTestError: Error, CustomStringConvertible {
    case setup(String)
    case pgbench(String)

    public var description: String {
        switch self {
        case .setup(let message): "load test set-up failed: \(message)"
        case .pgbench(let message): "pgbench comparison failed: \(message)"
        }
    }
}

/// `leasehold loadtest`: drives concurrent bookings through ingress, waits for every accepted
/// request's outcome, verifies the invariants against PostgreSQL, and reports throughput and
/// latency — beside pgbench's figures for the same booking on the same database (statement by
/// statement, and in one round trip).
///
/// Each run books fresh slots (interviewer `loadtest-<run>`) for fresh users, so runs never see
/// each other's data; the run number is chosen under a table lock, so two runs on one database
/// never share message keys. End-to-end latency is measured in PostgreSQL: from the stream
/// entry's ID (the XADD time, in Redis's clock) to `inbox.processed_at` (stamped just before
/// COMMIT), so it needs the two servers' clocks to agree (same host, or NTP).
///
/// With ``LoadTestConfiguration/ingressOnly`` it measures ingress alone: it sends the same
/// requests, counts the accepted answers, waits for no outcome and checks no booking, and then
/// removes what the run left in Redis (``RunBacklog``), so no worker started later processes it.
public struct LoadTest: Sendable {
    public let configuration: LoadTestConfiguration
    /// Where the progress line and phase notes go; `nil` shows nothing.
    public let progress: ProgressPrinter?
    /// Told when the measured interval starts and ends (the demo's process accounting).
    public let measurement: (any LoadTestMeasurement)?

    public init(
        configuration: LoadTestConfiguration, progress: ProgressPrinter? = nil,
        measurement: (any LoadTestMeasurement)? = nil
    ) {
        self.configuration = configuration
        self.progress = progress
        self.measurement = measurement
    }

    /// Runs the whole test and returns the report; `report.passed` says whether every invariant held.
    public func run() async throws -> LoadTestReport {
        if let problem = configuration.problem { throw LoadTestError.setup(problem) }
        let postgres = PostgresClient(
            configuration: PostgresConfiguration(
                connectionString: configuration.postgresURL, applicationName: "leasehold-loadtest"),
            size: 3)
        var redis: RedisClient?
        if configuration.ingressOnly, let url = configuration.redisURL {
            do {
                redis = RedisClient(configuration: try RedisConfiguration(url: url), size: 1)
            } catch {
                await postgres.close()
                throw LoadTestError.setup("--redis-url: \(error)")
            }
        }
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: Self.httpConfiguration(configuration))
        do {
            let report = try await execute(postgres: postgres, redis: redis, http: http)
            try await http.shutdown()
            redis?.close()
            await postgres.close()
            return report
        } catch {
            try? await http.shutdown()
            redis?.close()
            await postgres.close()
            throw error
        }
    }

    private static func httpConfiguration(_ configuration: LoadTestConfiguration) -> HTTPClient.Configuration {
        var http = HTTPClient.Configuration()
        http.connectionPool = .init(
            idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, configuration.concurrency))
        http.timeout = .init(connect: .seconds(5), read: .seconds(30))
        return http
    }

    // MARK: Phases

    /// Seeds the run, sends, and for a full run waits for the outcomes, checks the invariants and
    /// compares with pgbench; an ingress-only run ends after sending (``finishIngressOnly``).
    private func execute(postgres: PostgresClient, redis: RedisClient?, http: HTTPClient) async throws
        -> LoadTestReport
    {
        let configuration = self.configuration
        let plan = try await seedRun(postgres: postgres)
        // Ingress only: where the stream ends now, so the clean-up finds the run's entries after it.
        let backlog = redis.map {
            RunBacklog(
                redis: $0, keys: RedisKeys(prefix: configuration.redisPrefix, shards: configuration.redisShards),
                plan: plan)
        }
        let backlogStart: RunBacklog.Marks
        do {
            backlogStart = try await backlog?.lastEntryIDs() ?? [:]
        } catch {
            throw LoadTestError.setup("Redis (--redis-url) is unreachable: \(error)")
        }
        announce(plan)
        let duplicatesBefore = duplicateKeyLines()
        let sending = try await send(plan: plan, postgres: postgres, http: http)
        if let backlog {
            await measurement?.intervalEnded()
            return try await finishIngressOnly(
                plan: plan, stats: sending.stats, backlog: backlog, after: backlogStart,
                sendDuration: sending.duration, lineBox: sending.lineBox, postgres: postgres)
        }
        if sending.stats.accepted == 0 {
            progress?.finish()
            throw Self.nothingAccepted(sending.stats)
        }
        try await awaitOutcomes(of: sending, postgres: postgres)
        var report = try await report(
            plan: plan, sending: sending, duplicatesBefore: duplicatesBefore, postgres: postgres)
        if configuration.pgbench {
            try await compareWithPgbench(plan: plan, sent: report.sent, into: &report, postgres: postgres)
        }
        return report
    }

    /// The phase note that opens a run: what it seeded and what it is about to send.
    private func announce(_ plan: RequestPlan) {
        let bound: String =
            if let duration = configuration.duration { "for \(Self.number(duration.seconds)) s" } else {
                "\(configuration.plannedRequests ?? 0) requests"
            }
        let pace: String = if let rate = configuration.rate { "at \(Self.number(rate))/s" } else { "(closed loop)" }
        progress?.note(
            "run \(plan.run): \(plan.slotIDs.count) fresh slots, \(plan.users.count) fresh users; sending \(bound) "
                + "(\(configuration.input.summary)) from \(configuration.concurrency) clients \(pace)"
                + (configuration.ingressOnly ? "; ingress only: no outcomes awaited" : ""))
    }

    /// What the sending phase leaves for the next ones.
    struct Sending: Sendable {
        var stats: SendStatistics
        var tracker: CompletionTracker
        var started: ContinuousClock.Instant
        var wallStart: Date
        var duration: Duration
        var health: [HealthProbe.Result]
        var lineBox: ProgressLineBox
    }

    /// Sends every request from `concurrency` clients (or until the duration or the schedule
    /// ends), while polling the inbox for outcomes, probing health and showing progress.
    private func send(plan: RequestPlan, postgres: PostgresClient, http: HTTPClient) async throws -> Sending {
        let configuration = self.configuration
        let stats = SendStatistics(limit: configuration.plannedRequests, recordSamples: configuration.recordsSamples)
        let probe: HealthProbe?
        do {
            probe = configuration.probes.isEmpty ? nil : try HealthProbe(targets: configuration.probes)
        } catch {
            throw LoadTestError.setup("--probe: \(error)")
        }
        let tracker = CompletionTracker(plan: plan)
        let started = ContinuousClock.now
        let wallStart = Date()
        let sendDeadline = (configuration.schedule?.totalDuration ?? configuration.duration).map { started + $0 }
        let lineBox = ProgressLineBox(ProgressLine(started: started))
        await measurement?.intervalStarted()
        probe?.start()
        await withTaskGroup(of: Bool.self) { phases in
            phases.addTask { [progress] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    guard !Task.isCancelled else { break }
                    let (sent, accepted, failed) = stats.counts
                    progress?.update(
                        lineBox.next(
                            phase: "sending", sent: sent, accepted: accepted, completed: tracker.completed,
                            failed: failed))
                }
                return false
            }
            if !configuration.ingressOnly {
                phases.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        guard !Task.isCancelled else { break }
                        try? await tracker.poll(limit: 20_000, postgres: postgres)
                    }
                    return false
                }
            }
            phases.addTask {
                if let targets = LoadTarget.plainHTTP(configuration.ingressURLs) {
                    // Every client on one reactor thread, each with its own keep-alive connection
                    // per ingress URL (see LoadHTTPConnection for why).
                    let reactor = Reactor(label: "leasehold.loadtest")
                    await withTaskExecutorPreference(reactor) {
                        await withTaskGroup(of: Void.self) { senders in
                            for _ in 0..<configuration.concurrency {
                                senders.addTask {
                                    await drive(
                                        plan: plan, stats: stats, tracker: tracker, targets: targets,
                                        reactor: reactor, started: started, deadline: sendDeadline)
                                }
                            }
                        }
                    }
                    reactor.shutDown()
                } else {
                    await withTaskGroup(of: Void.self) { senders in
                        for _ in 0..<configuration.concurrency {
                            senders.addTask {
                                await drive(
                                    plan: plan, stats: stats, tracker: tracker, http: http, started: started,
                                    deadline: sendDeadline)
                            }
                        }
                    }
                }
                return true
            }
            for await sendersDone in phases where sendersDone {
                phases.cancelAll()
            }
        }
        return Sending(
            stats: stats, tracker: tracker, started: started, wallStart: wallStart,
            duration: started.duration(to: .now), health: probe?.stop() ?? [], lineBox: lineBox)
    }

    /// The set-up error of a run in which no request was accepted, with the answers it got.
    static func nothingAccepted(_ stats: SendStatistics) -> LoadTestError {
        let statuses = stats.statuses.sorted { $0.key < $1.key }.map { "HTTP \($0.key) ×\($0.value)" }
        return LoadTestError.setup(
            "no request was accepted ("
                + (statuses + (stats.errors > 0 ? ["\(stats.errors) unanswered"] : [])).joined(separator: ", ")
                + "); check --url and the token or secret")
    }

    /// Waits, up to the completion timeout, for every accepted request's outcome.
    private func awaitOutcomes(of sending: Sending, postgres: PostgresClient) async throws {
        let (stats, tracker, lineBox) = (sending.stats, sending.tracker, sending.lineBox)
        progress?.note(
            "sending done after \(Self.number(sending.duration.seconds)) s; waiting for every accepted request's outcome"
        )
        let waitDeadline = ContinuousClock.now + configuration.completionTimeout
        var lastUpdate = ContinuousClock.now
        while tracker.outstanding > 0 && ContinuousClock.now < waitDeadline {
            do {
                try await tracker.poll(limit: 50_000, postgres: postgres)
            } catch let error as PostgresError where error.source == .connection {
                // PostgreSQL restarting (a fault injected on purpose, or an outage): wait it out
                // until the deadline, as the workers do.
                guard ContinuousClock.now < waitDeadline else { throw error }
                try await Task.sleep(for: .milliseconds(500))
                continue
            }
            if lastUpdate.duration(to: .now) >= .seconds(1) {
                lastUpdate = .now
                let (sent, accepted, failed) = stats.counts
                progress?.update(
                    lineBox.next(
                        phase: "waiting", sent: sent, accepted: accepted, completed: tracker.completed, failed: failed))
            }
            if tracker.outstanding > 0 { try await Task.sleep(for: .milliseconds(200)) }
        }
        await measurement?.intervalEnded()
        let (sent, accepted, failed) = stats.counts
        progress?.update(
            lineBox.next(phase: "done", sent: sent, accepted: accepted, completed: tracker.completed, failed: failed))
        progress?.finish()
    }

    /// One snapshot of every inbox row of this run: outcomes, latency, throughput, invariants.
    private func report(
        plan: RequestPlan, sending: Sending, duplicatesBefore: Int?, postgres: PostgresClient
    ) async throws -> LoadTestReport {
        let stats = sending.stats
        let wallStart = sending.wallStart
        let snapshot = try await inboxSnapshot(plan: plan, postgres: postgres)
        var endToEnd = LatencySummary.makeHistogram()
        var lastCommit = wallStart
        var outcomes: [String: Int] = [:]
        var committed: [(index: Int, micros: Int64, committedAt: Double)] = []
        for row in snapshot.values {
            if let micros = row.endToEndMicros { _ = endToEnd.record(UInt64(max(1, micros))) }
            lastCommit = max(lastCommit, Date(timeIntervalSince1970: row.committedAt))
            outcomes[row.outcome, default: 0] += 1
            if configuration.recordsSamples {
                committed.append(
                    (row.index, row.endToEndMicros ?? 0, row.committedAt - wallStart.timeIntervalSince1970))
            }
        }
        let invariants = try await invariantInputs(
            plan: plan, snapshot: snapshot, stats: stats, duplicatesBefore: duplicatesBefore, postgres: postgres
        ).check()
        let window = max(0.001, lastCommit.timeIntervalSince(wallStart))
        let processedUnanswered = stats.unanswered.filter { snapshot[$0] != nil }.count
        let (sent, accepted, _) = stats.counts

        var report = LoadTestReport(
            run: String(plan.run), input: configuration.input.rawValue, requests: sent,
            durationSeconds: configuration.duration.map(\.seconds), rate: configuration.rate,
            concurrency: configuration.concurrency, slots: configuration.slots,
            requestsPerSlot: configuration.requestsPerSlot, users: plan.users.count, sent: sent, accepted: accepted,
            rejected: stats.rejected, errors: stats.errors, ambiguous: stats.ambiguous,
            unansweredButProcessed: processedUnanswered,
            statuses: Dictionary(uniqueKeysWithValues: stats.statuses.map { (String($0.key), $0.value) }),
            completed: snapshot.count - processedUnanswered, sendSeconds: Self.rounded(sending.duration.seconds),
            bookingsPerSecond: (Double(snapshot.count) / window * 10).rounded() / 10,
            httpLatency: stats.httpLatency, endToEndLatency: LatencySummary(endToEnd), outcomes: outcomes,
            invariants: invariants, pgbench: nil, pgbenchFunction: nil)
        report.acceptedPerSecond = Self.perSecond(accepted, sending.duration)
        if configuration.recordTimeline {
            report.timeline = LoadTestTimeline(samples: stats.samples, endToEnd: committed)
        }
        report.health = sending.health
        if configuration.recovery != nil, let schedule = configuration.schedule {
            let overload = OverloadReport.make(
                schedule: schedule, samples: stats.samples, committed: committed,
                withoutRetryAfter: stats.withoutRetryAfter, unanswered: stats.errors, lag: stats.lag,
                dropped: stats.droppedIndices, health: sending.health)
            report.overload = overload
            report.invariants += overload.checks
        }
        return report
    }

    /// Both database limits, each on fresh slots and users of its own with the same plan: the
    /// statement-by-statement form first, then the one-round-trip form Leasehold ships.
    private func compareWithPgbench(
        plan: RequestPlan, sent: Int, into report: inout LoadTestReport, postgres: PostgresClient
    ) async throws {
        for form in Pgbench.Form.allCases {
            let comparison = try await seed(
                label: "pgbench-\(form.rawValue)-\(plan.run)", users: plan.users.count, postgres: postgres)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "leasehold-pgbench-\(form.rawValue)-\(plan.run)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            progress?.note(
                "pgbench (\(form == .statements ? "statement by statement" : "one round trip, leasehold_book")): "
                    + "\(sent) bookings from \(configuration.concurrency) clients, "
                    + "\(configuration.requestsPerSlot) per slot in a row…")
            let result = try await Pgbench.run(
                form, postgresURL: configuration.postgresURL, run: plan.run, clients: configuration.concurrency,
                transactions: pgbenchTransactions(sent: sent), slotIDs: comparison.slotIDs, users: comparison.users,
                requestsPerSlot: configuration.requestsPerSlot, postgres: postgres, directory: directory)
            switch form {
            case .statements: report.pgbench = result
            case .function: report.pgbenchFunction = result
            }
        }
    }

    static func perSecond(_ count: Int, _ duration: Duration) -> Double {
        (Double(count) / max(0.001, duration.seconds) * 10).rounded() / 10
    }

    /// How many transactions pgbench runs: as many as were sent, but an overload run sends
    /// mostly what is refused, and 20,000 give pgbench's rate as well as 400,000 would.
    private func pgbenchTransactions(sent: Int) -> Int {
        max(1, configuration.recovery == nil ? sent : min(sent, 20_000))
    }

    static func rounded(_ seconds: Double) -> Double { (seconds * 1000).rounded() / 1000 }

    /// A figure for people: whole numbers without a fraction, others with one decimal.
    public static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.1f", value)
    }
}
