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
        let what = configuration.input.summary
        let bound: String =
            if let duration = configuration.duration { "for \(Self.number(duration.seconds)) s" } else {
                "\(configuration.plannedRequests ?? 0) requests"
            }
        let pace: String = if let rate = configuration.rate { "at \(Self.number(rate))/s" } else { "(closed loop)" }
        progress?.note(
            "run \(plan.run): \(plan.slotIDs.count) fresh slots, \(plan.users.count) fresh users; sending \(bound) "
                + "(\(what)) from \(configuration.concurrency) clients \(pace)"
                + (configuration.ingressOnly ? "; ingress only: no outcomes awaited" : ""))
        let duplicatesBefore = duplicateKeyLines()

        // Send, while polling the inbox for outcomes and showing progress.
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
        let sendDuration = started.duration(to: .now)
        let health = probe?.stop() ?? []
        if let backlog {
            await measurement?.intervalEnded()
            return try await finishIngressOnly(
                plan: plan, stats: stats, backlog: backlog, after: backlogStart, sendDuration: sendDuration,
                lineBox: lineBox, postgres: postgres)
        }
        if stats.accepted == 0 {
            progress?.finish()
            let statuses = stats.statuses.sorted { $0.key < $1.key }.map { "HTTP \($0.key) ×\($0.value)" }
            throw LoadTestError.setup(
                "no request was accepted ("
                    + (statuses + (stats.errors > 0 ? ["\(stats.errors) unanswered"] : [])).joined(separator: ", ")
                    + "); check --url and the token or secret")
        }

        // Wait (bounded) for every accepted request's outcome.
        progress?.note(
            "sending done after \(Self.number(sendDuration.seconds)) s; waiting for every accepted request's outcome")
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

        // One snapshot of every inbox row of this run: outcomes, latency, throughput, invariants.
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
        let invariants = try await checkInvariants(
            plan: plan, snapshot: snapshot, stats: stats, duplicatesBefore: duplicatesBefore, postgres: postgres)
        let window = max(0.001, lastCommit.timeIntervalSince(wallStart))
        let processedUnanswered = stats.unanswered.filter { snapshot[$0] != nil }.count

        var report = LoadTestReport(
            run: String(plan.run), input: configuration.input.rawValue, requests: sent,
            durationSeconds: configuration.duration.map(\.seconds), rate: configuration.rate,
            concurrency: configuration.concurrency, slots: configuration.slots,
            requestsPerSlot: configuration.requestsPerSlot, users: plan.users.count, sent: sent, accepted: accepted,
            rejected: stats.rejected, errors: stats.errors, ambiguous: stats.ambiguous,
            unansweredButProcessed: processedUnanswered,
            statuses: Dictionary(uniqueKeysWithValues: stats.statuses.map { (String($0.key), $0.value) }),
            completed: snapshot.count - processedUnanswered, sendSeconds: Self.rounded(sendDuration.seconds),
            bookingsPerSecond: (Double(snapshot.count) / window * 10).rounded() / 10,
            httpLatency: stats.httpLatency, endToEndLatency: LatencySummary(endToEnd), outcomes: outcomes,
            invariants: invariants, pgbench: nil, pgbenchFunction: nil)
        report.acceptedPerSecond = Self.perSecond(accepted, sendDuration)
        if configuration.recordTimeline {
            report.timeline = LoadTestTimeline(samples: stats.samples, endToEnd: committed)
        }
        report.health = health
        if configuration.recovery != nil, let schedule = configuration.schedule {
            let overload = OverloadReport.make(
                schedule: schedule, samples: stats.samples, committed: committed,
                withoutRetryAfter: stats.withoutRetryAfter, unanswered: stats.errors, lag: stats.lag,
                dropped: stats.droppedIndices, health: health)
            report.overload = overload
            report.invariants += overload.checks
        }

        if configuration.pgbench {
            // Both database limits, each on fresh slots and users of its own with the same plan:
            // the statement-by-statement form first, then the one-round-trip form Leasehold ships.
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
        return report
    }

    /// The end of an `--ingress-only` run: remove what it left in Redis, check that nothing of it
    /// is left and that no worker processed any of it, and report the sending figures.
    private func finishIngressOnly(
        plan: RequestPlan, stats: SendStatistics, backlog: RunBacklog, after: RunBacklog.Marks, sendDuration: Duration,
        lineBox: ProgressLineBox, postgres: PostgresClient
    ) async throws -> LoadTestReport {
        let (sent, accepted, failed) = stats.counts
        progress?.update(lineBox.next(phase: "done", sent: sent, accepted: accepted, completed: 0, failed: failed))
        progress?.finish()
        progress?.note(
            "sending done after \(Self.number(sendDuration.seconds)) s; removing the run's entries from \(backlog.streams.joined(separator: ", "))"
        )
        let removed: RunBacklog.Removal
        let left: (streamEntries: Int, keys: Int)
        do {
            removed = try await backlog.remove(after: after, sent: sent)
            left = try await backlog.remaining(after: after, sent: sent)
        } catch {
            throw LoadTestError.setup(
                "could not remove the run's entries from Redis (\(error)); they carry keys \(plan.keyPattern)")
        }
        if accepted == 0 {
            let statuses = stats.statuses.sorted { $0.key < $1.key }.map { "HTTP \($0.key) ×\($0.value)" }
            throw LoadTestError.setup(
                "no request was accepted ("
                    + (statuses + (stats.errors > 0 ? ["\(stats.errors) unanswered"] : [])).joined(separator: ", ")
                    + "); check --url and the token or secret")
        }
        let processed = try await postgres.query(
            "SELECT count(*) FROM inbox WHERE message_key ~ \(plan.keyPattern)"
        ).single().decode(Int.self, at: 0)
        let invariants: [LoadTestReport.Invariant] = [
            .init(
                name: "nothing of the run left in Redis", passed: left.streamEntries == 0 && left.keys == 0,
                detail: left.streamEntries == 0 && left.keys == 0
                    ? "removed \(removed.streamEntries) stream entries and \(removed.keys) result/digest keys"
                    : "\(left.streamEntries) stream entries and \(left.keys) result/digest keys left"),
            .init(
                name: "no worker processed the run's requests", passed: processed == 0,
                detail: processed == 0
                    ? "0 inbox rows for the run"
                    : "\(processed) inbox rows for the run: a worker consumes \(backlog.streams.joined(separator: ", ")), so the figure is "
                        + "not ingress alone"),
        ]
        var report = LoadTestReport(
            run: String(plan.run), input: configuration.input.rawValue, requests: sent,
            durationSeconds: configuration.duration.map(\.seconds), rate: configuration.rate,
            concurrency: configuration.concurrency, slots: configuration.slots,
            requestsPerSlot: configuration.requestsPerSlot, users: plan.users.count, sent: sent, accepted: accepted,
            rejected: stats.rejected, errors: stats.errors, ambiguous: stats.ambiguous, unansweredButProcessed: 0,
            statuses: Dictionary(uniqueKeysWithValues: stats.statuses.map { (String($0.key), $0.value) }),
            completed: 0, sendSeconds: Self.rounded(sendDuration.seconds), bookingsPerSecond: 0,
            httpLatency: stats.httpLatency, endToEndLatency: LatencySummary(LatencySummary.makeHistogram()),
            outcomes: [:], invariants: invariants, pgbench: nil, pgbenchFunction: nil)
        report.ingressOnly = true
        report.acceptedPerSecond = Self.perSecond(accepted, sendDuration)
        report.backlogRemoved = .init(streamEntries: removed.streamEntries, keys: removed.keys)
        if configuration.recordTimeline {
            report.timeline = LoadTestTimeline(samples: stats.samples, endToEnd: [])
        }
        return report
    }

    static func perSecond(_ count: Int, _ duration: Duration) -> Double {
        (Double(count) / max(0.001, duration.seconds) * 10).rounded() / 10
    }

    /// Fresh slots and users.
    struct Seeded: Sendable {
        var slotIDs: [Int64]
        var users: ClosedRange<Int64>
    }

    /// Picks this run's number and creates its slots and users, in one transaction under a lock
    /// on `users` that concurrent load tests also take: the number is one no earlier run on this
    /// database used (no slots labelled `loadtest-<run>` yet), so message keys never collide.
    private func seedRun(postgres: PostgresClient) async throws -> RequestPlan {
        let configuration = self.configuration
        let (run, seeded) = try await postgres.withTransaction(.init(lockTimeout: .seconds(30), statementTimeout: nil))
        {
            connection in
            try await connection.query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            var run = max(1, Int64(Date().timeIntervalSince1970) - RequestPlan.runEpoch)
            while try await !connection.query(
                "SELECT 1 FROM time_slots WHERE interviewer = \("loadtest-\(run)") LIMIT 1"
            ).isEmpty {
                run += 1
            }
            return (
                run,
                try await Self.seed(
                    label: "loadtest-\(run)", slots: configuration.slots, users: configuration.userCount, on: connection
                )
            )
        }
        return RequestPlan(
            run: run, input: configuration.input, slotIDs: seeded.slotIDs, users: seeded.users,
            requestsPerSlot: configuration.requestsPerSlot, apiToken: configuration.apiToken,
            telegramSecret: configuration.telegramSecret)
    }

    private func seed(label: String, users: Int, postgres: PostgresClient) async throws -> Seeded {
        let slots = configuration.slots
        return try await postgres.withTransaction(.init(lockTimeout: .seconds(30), statementTimeout: nil)) {
            connection in
            try await connection.query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            return try await Self.seed(label: label, slots: slots, users: users, on: connection)
        }
    }

    /// Creates `slots` open slots labelled `label` and `users` users with IDs above every
    /// existing one (the caller holds the lock on `users`).
    private static func seed(label: String, slots: Int, users: Int, on connection: PostgresConnection) async throws
        -> Seeded
    {
        let base = try await connection.query("SELECT coalesce(max(id), 0) + 1 FROM users").single().decode(
            Int64.self, at: 0)
        let sync = ScheduleSync()
        var next = base
        while next < base + Int64(users) {
            let chunk = min(Int64(100_000), base + Int64(users) - next)
            _ = try await sync.ensureUsers(Array(next..<(next + chunk)), on: connection)
            next += chunk
        }
        let start = Date(timeIntervalSince1970: 4_102_444_800 + Double(Int.random(in: 0..<1_000_000)) * 60)
        let report = try await sync.sync(
            ScheduleSync.generate(count: slots, start: start, length: 1800, interviewer: label),
            closeMissing: false, on: connection)
        guard report.created == slots, report.slotIDs.count == slots else {
            throw LoadTestError.setup("could not create \(slots) fresh slots")
        }
        return Seeded(slotIDs: report.slotIDs, users: base...(base + Int64(users) - 1))
    }

    /// One client: takes the next request index, sends it, records the answer — until the
    /// requests are all handed out or the deadline passed.
    private func drive(
        plan: RequestPlan, stats: SendStatistics, tracker: CompletionTracker, http: HTTPClient,
        started: ContinuousClock.Instant, deadline: ContinuousClock.Instant?
    ) async {
        let configuration = self.configuration
        while let (index, sent) = await nextRequest(stats: stats, started: started, deadline: deadline) {
            let request = plan.request(
                index, baseURL: configuration.ingressURLs[index % configuration.ingressURLs.count])
            do {
                let lag = sent.duration(to: .now)
                let response = try await http.execute(request, timeout: .seconds(30))
                _ = try await response.body.collect(upTo: 64 * 1024)
                let status = Int(response.status.code)
                let accepted = status == configuration.input.acceptedStatus(ofRequest: index)
                if accepted { tracker.accepted(index) }
                let ambiguous = Self.outcomeUnknown(
                    status: status, outcome: response.headers.first(name: "Leasehold-Outcome"))
                stats.record(
                    index: index, status: status, accepted: accepted, ambiguous: ambiguous,
                    sentAt: started.duration(to: sent), latency: sent.duration(to: .now), lag: lag,
                    retryAfter: response.headers.contains(name: "Retry-After"))
            } catch {
                stats.recordError(index: index)
            }
        }
    }

    /// The same client loop over ``LoadHTTPConnection``s on `reactor` (plain `http://` ingress
    /// URLs): request `index` goes to `targets[index % targets.count]`, as above.
    private func drive(
        plan: RequestPlan, stats: SendStatistics, tracker: CompletionTracker, targets: [LoadTarget], reactor: Reactor,
        started: ContinuousClock.Instant, deadline: ContinuousClock.Instant?
    ) async {
        let configuration = self.configuration
        let connections = targets.map { LoadHTTPConnection(reactor: reactor, address: $0.address) }
        defer { for connection in connections { connection.close() } }
        while let (index, sent) = await nextRequest(stats: stats, started: started, deadline: deadline) {
            let target = index % targets.count
            let request = plan.requestBytes(index, host: targets[target].host)
            do {
                let lag = sent.duration(to: .now)
                let answer = try await connections[target].exchange(request, deadline: .now + .seconds(30))
                let accepted = answer.status == configuration.input.acceptedStatus(ofRequest: index)
                if accepted { tracker.accepted(index) }
                let ambiguous = Self.outcomeUnknown(status: answer.status, outcome: answer.outcome)
                stats.record(
                    index: index, status: answer.status, accepted: accepted, ambiguous: ambiguous,
                    sentAt: started.duration(to: sent), latency: sent.duration(to: .now), lag: lag,
                    retryAfter: answer.retryAfter)
            } catch {
                stats.recordError(index: index)
            }
        }
    }

    /// Whether an answer leaves the request's fate open, so that it counts with the unanswered ones
    /// (it may have reached the stream): a 503 from ingress with `Leasehold-Outcome: unknown`
    /// (Redis stopped answering mid-enqueue), or a 502 or 504 from a reverse proxy in front of
    /// ingress (the replica died or stalled after the request reached it; its answer was lost).
    public static func outcomeUnknown(status: Int, outcome: String?) -> Bool {
        switch status {
        case 503: outcome == "unknown"
        case 502, 504: true
        default: false
        }
    }

    /// The next request a client loop sends, and when it counts as sent; `nil` when the run is
    /// over. Closed loop: the next index at once, nothing new after the deadline. Fixed rate: the
    /// schedule decides (``RateSchedule``, with the recovery phase of an overload run), waiting
    /// until the index is due (a request due before the end still goes out, however late, and
    /// counts from its due time).
    private func nextRequest(
        stats: SendStatistics, started: ContinuousClock.Instant, deadline: ContinuousClock.Instant?
    ) async -> (index: Int, sent: ContinuousClock.Instant)? {
        guard let schedule = configuration.schedule else {
            if let deadline, ContinuousClock.now >= deadline { return nil }
            return stats.claim().map { ($0, ContinuousClock.now) }
        }
        while let index = stats.claim() {
            guard let offset = schedule.due(index) else {
                stats.stop(at: index)
                return nil
            }
            let due = started + offset
            if let allowed = configuration.allowedLag, due.duration(to: .now) > allowed {
                stats.recordDropped(index: index)
                continue
            }
            if due > .now { try? await Task.sleep(until: due) }
            return (index, due)
        }
        return nil
    }

    // MARK: Verification

    /// One inbox row of this run.
    struct InboxRow: Sendable {
        var index: Int
        var key: String
        var outcome: String
        var endToEndMicros: Int64?
        /// COMMIT time, seconds since 1970 (PostgreSQL's clock).
        var committedAt: Double
    }

    /// Every inbox row of this run, by request index, read in one statement (one snapshot).
    private func inboxSnapshot(plan: RequestPlan, postgres: PostgresClient) async throws -> [Int: InboxRow] {
        var rows: [Int: InboxRow] = [:]
        for row in try await postgres.query(
            """
            SELECT message_key, outcome,
                   (extract(epoch FROM processed_at) * 1000000)::bigint
                       - split_part(entry_id, '-', 1)::bigint * 1000,
                   extract(epoch FROM processed_at)::float8
            FROM inbox WHERE message_key ~ \(plan.keyPattern)
            """)
        {
            let (key, outcome, micros, committedAt) = try row.decode(String.self, String.self, Int64?.self, Double.self)
            guard let index = plan.index(ofKey: key) else { continue }
            rows[index] = InboxRow(
                index: index, key: key, outcome: outcome, endToEndMicros: micros, committedAt: committedAt)
        }
        return rows
    }

    private func duplicateKeyLines() -> Int? {
        guard let path = configuration.postgresLog,
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        else { return nil }
        return text.split(separator: "\n").filter { $0.contains("duplicate key value") }.count
    }

    static let finalOutcomes: Set<String> = ["booked", "slot_taken", "already_booked", "unknown_slot", "rejected"]

    private func checkInvariants(
        plan: RequestPlan, snapshot: [Int: InboxRow], stats: SendStatistics, duplicatesBefore: Int?,
        postgres: PostgresClient
    ) async throws -> [LoadTestReport.Invariant] {
        var invariants: [LoadTestReport.Invariant] = []
        // Every index below `handedOut` was sent, or dropped by the generator for being late.
        let handedOut = stats.handedOut
        let unanswered = Set(stats.unanswered)
        let rejected = Set(stats.rejectedIndices)
        let dropped = Set(stats.droppedIndices)
        func isAccepted(_ index: Int) -> Bool {
            index < handedOut && !unanswered.contains(index) && !rejected.contains(index) && !dropped.contains(index)
        }

        // 1. No double booking anywhere in the database (not only this run's slots).
        let doubleBooked = try await postgres.query(
            """
            SELECT count(*) FROM (
                SELECT time_slot_id FROM interviews WHERE status = 'active'
                GROUP BY time_slot_id HAVING count(*) > 1) doubled
            """
        ).single().decode(Int.self, at: 0)
        invariants.append(
            .init(
                name: "no slot has two active interviews", passed: doubleBooked == 0,
                detail: "\(doubleBooked) slots with more than one active interview"))

        // 2. Each slot's bookings agree with what its requests were told.
        var bookedKeys: [Int64: [String]] = [:]
        for row in try await postgres.query(
            """
            SELECT time_slot_id, message_key FROM interviews
            WHERE status = 'active' AND time_slot_id = ANY(\(PostgresInt8Array(plan.slotIDs)))
            """)
        {
            let (slot, key) = try row.decode(Int64.self, String.self)
            bookedKeys[slot, default: []].append(key)
        }
        // Per slot (by position), the outcomes of its requests that have one.
        var slotOutcomes: [Int: [(key: String, outcome: String)]] = [:]
        for row in snapshot.values {
            slotOutcomes[plan.slotPosition(row.index), default: []].append((row.key, row.outcome))
        }
        var disagreements: [String] = []
        var booked = 0
        var leftFree = 0
        for (position, answers) in slotOutcomes.sorted(by: { $0.key < $1.key }) {
            let slot = plan.slotIDs[position]
            let inDatabase = Set(bookedKeys[slot] ?? [])
            let told = Set(answers.filter { $0.outcome == "booked" }.map(\.key))
            if !inDatabase.isEmpty { booked += 1 }
            // A booking by a request whose answer was lost is legitimate (it reached the stream).
            let lost = inDatabase.filter { key in plan.index(ofKey: key).map { unanswered.contains($0) } ?? false }
            if told.count > 1 {
                disagreements.append("slot \(slot): \(told.count) requests told booked")
            } else if inDatabase.count > 1 {
                disagreements.append("slot \(slot): \(inDatabase.count) active interviews")
            } else if told != inDatabase && !(told.isEmpty && inDatabase == lost) {
                disagreements.append(
                    "slot \(slot): booked by \(inDatabase.sorted()) but \(told.sorted()) told booked")
            } else if inDatabase.isEmpty {
                // Free is right only when nobody could take it: every requester already had a booking.
                if answers.allSatisfy({ $0.outcome == "already_booked" }) {
                    leftFree += 1
                } else {
                    let seen = Set(answers.map(\.outcome)).sorted().joined(separator: ", ")
                    disagreements.append("slot \(slot): free, yet its requests were told \(seen)")
                }
            }
        }
        let freeNote = leftFree == 0 ? "" : "; \(leftFree) left free (every requester already had a booking)"
        invariants.append(
            .init(
                name: "each contended slot booked once, by the request told booked", passed: disagreements.isEmpty,
                detail: disagreements.isEmpty
                    ? "\(booked) of \(slotOutcomes.count) requested slots booked\(freeNote)"
                    : "\(disagreements.count) slots disagree, e.g. " + disagreements.prefix(3).joined(separator: "; ")))

        // 3. Inbox rows = accepted requests (plus those whose answer was lost, or was an ambiguous
        // 503, but that reached the stream: at most one row each, the primary key sees to that).
        let accepted = stats.accepted
        let processedUnanswered = snapshot.keys.filter { unanswered.contains($0) }.count
        let unexpected = snapshot.keys.filter { !isAccepted($0) && !unanswered.contains($0) }.count
        let rowsForAccepted = snapshot.count - processedUnanswered
        var countDetail = "\(rowsForAccepted) inbox rows for \(accepted) accepted requests"
        if processedUnanswered > 0 {
            countDetail +=
                ", plus \(processedUnanswered) for requests whose answer was lost or ambiguous but which reached the stream"
        }
        if unexpected > 0 { countDetail += "; \(unexpected) rows for requests that were refused (non-2xx)" }
        invariants.append(
            .init(
                name: "inbox count equals accepted requests", passed: rowsForAccepted == accepted && unexpected == 0,
                detail: countDetail))

        // 4. Every accepted request: one inbox row (primary key) with a final outcome.
        var missing = 0
        var notFinal = 0
        for index in 0..<handedOut where isAccepted(index) {
            guard let row = snapshot[index] else {
                missing += 1
                continue
            }
            if !Self.finalOutcomes.contains(row.outcome) { notFinal += 1 }
        }
        invariants.append(
            .init(
                name: "every accepted request has exactly one outcome", passed: missing == 0 && notFinal == 0,
                detail: missing == 0 && notFinal == 0
                    ? "one inbox row (primary key) with a final outcome per accepted request"
                    : "\(missing) accepted requests without an outcome, \(notFinal) with a non-final one"))

        // 5. The unique index was never what stopped a double booking.
        if let before = duplicatesBefore, let after = duplicateKeyLines() {
            invariants.append(
                .init(
                    name: "zero duplicate key errors in the PostgreSQL log", passed: after == before,
                    detail: "\(after - before) new duplicate key errors"))
        } else {
            invariants.append(
                .init(
                    name: "zero duplicate key errors in the PostgreSQL log", passed: true,
                    detail: "not checked: pass --postgres-log (or set POSTGRES_LOG)", checked: false))
        }
        return invariants
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
