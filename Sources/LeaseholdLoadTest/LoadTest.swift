import AsyncHTTPClient
import Foundation
import Histogram
import LeaseholdDomain
import LeaseholdPostgres
import NIOCore
import NIOHTTP1
import Synchronization

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
/// latency — beside pgbench's figure for the same transaction on the same database.
///
/// Each run books fresh slots (interviewer `loadtest-<run>`) for fresh users, so runs never see
/// each other's data. End-to-end latency is measured in PostgreSQL: from the stream entry's ID
/// (the XADD time, in Redis's clock) to `inbox.processed_at` (stamped just before COMMIT), so it
/// needs the two servers' clocks to agree (same host, or NTP).
public struct LoadTest: Sendable {
    public let configuration: LoadTestConfiguration
    /// Called about once a second with the progress line (and once at the end).
    public let onProgress: @Sendable (String) -> Void

    public init(configuration: LoadTestConfiguration, onProgress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.configuration = configuration
        self.onProgress = onProgress
    }

    /// Runs the whole test and returns the report; `report.passed` says whether every invariant held.
    public func run() async throws -> LoadTestReport {
        let run = "\(Int(Date().timeIntervalSince1970))\(Int.random(in: 100...999))"
        let postgres = PostgresClient(
            configuration: PostgresConfiguration(connectionString: configuration.postgresURL, applicationName: "leasehold-loadtest"),
            size: 2)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: Self.httpConfiguration(configuration))
        do {
            let report = try await execute(run: run, postgres: postgres, http: http)
            try await http.shutdown()
            await postgres.close()
            return report
        } catch {
            try? await http.shutdown()
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

    private func execute(run: String, postgres: PostgresClient, http: HTTPClient) async throws -> LoadTestReport {
        let configuration = self.configuration
        let seeded = try await seed(run: run, label: "loadtest-\(run)", users: configuration.requests, postgres: postgres)
        let duplicatesBefore = duplicateKeyLines()

        // Send.
        let stats = SendStatistics()
        let started = ContinuousClock.now
        let wallStart = Date()
        await withTaskGroup(of: Bool.self) { phases in
            // The progress line, once a second, until the senders are done.
            phases.addTask { [onProgress] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    onProgress(stats.progressLine(elapsed: started.duration(to: .now), completed: nil))
                }
                return false
            }
            phases.addTask {
                await withTaskGroup(of: Void.self) { senders in
                    for client in 0..<configuration.concurrency {
                        senders.addTask {
                            await drive(
                                client: client, run: run, seeded: seeded, stats: stats, http: http, started: started)
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

        // Wait (bounded) for every accepted request's outcome.
        let accepted = stats.accepted
        let deadline = ContinuousClock.now + configuration.completionTimeout
        var completed = 0
        while true {
            completed = try await postgres.query(
                "SELECT count(*) FROM inbox WHERE message_key LIKE \("api:lt-\(run)-%")"
            ).single().decode(Int.self, at: 0)
            onProgress(stats.progressLine(elapsed: started.duration(to: .now), completed: completed))
            if completed >= accepted || ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(200))
        }

        // End-to-end latency and throughput, from PostgreSQL's own timestamps.
        var endToEnd = LatencySummary.makeHistogram()
        var lastCommit = wallStart
        for row in try await postgres.query(
            """
            SELECT (extract(epoch FROM processed_at) * 1000000)::bigint
                       - split_part(entry_id, '-', 1)::bigint * 1000,
                   extract(epoch FROM processed_at)::float8
            FROM inbox WHERE message_key LIKE \("api:lt-\(run)-%")
            """)
        {
            let (micros, committedAt) = try row.decode(Int64.self, Double.self)
            _ = endToEnd.record(UInt64(max(1, micros)))
            lastCommit = max(lastCommit, Date(timeIntervalSince1970: committedAt))
        }
        let outcomes = try await outcomeCounts(run: run, postgres: postgres)
        let invariants = try await checkInvariants(
            run: run, seeded: seeded, accepted: accepted, completed: completed, duplicatesBefore: duplicatesBefore,
            postgres: postgres)
        let window = max(0.001, lastCommit.timeIntervalSince(wallStart))

        var report = LoadTestReport(
            run: run, requests: configuration.requests, concurrency: configuration.concurrency, slots: configuration.slots,
            requestsPerSlot: configuration.requestsPerSlot, sent: stats.sent, accepted: accepted,
            rejected: stats.rejected, errors: stats.errors, completed: completed,
            sendSeconds: Self.seconds(sendDuration), bookingsPerSecond: (Double(completed) / window * 10).rounded() / 10,
            httpLatency: stats.httpLatency, endToEndLatency: LatencySummary(endToEnd), outcomes: outcomes,
            invariants: invariants, pgbench: nil)

        if configuration.pgbench {
            let comparison = try await seed(
                run: run, label: "pgbench-\(run)", users: configuration.requests, postgres: postgres)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("leasehold-pgbench-\(run)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            onProgress("pgbench: \(configuration.requests) transactions from \(configuration.concurrency) clients…")
            report.pgbench = try await Pgbench.run(
                postgresURL: configuration.postgresURL, clients: configuration.concurrency,
                transactions: configuration.requests, slots: comparison.slots, users: comparison.users,
                directory: directory)
        }
        return report
    }

    /// The fresh slots and users of one run.
    struct Seeded: Sendable {
        var slots: ClosedRange<Int64>
        var slotIDs: [Int64]
        var users: ClosedRange<Int64>
    }

    /// Creates `configuration.slots` open slots and `users` users nobody else uses.
    private func seed(run: String, label: String, users: Int, postgres: PostgresClient) async throws -> Seeded {
        let slotCount = configuration.slots
        return try await postgres.withTransaction(.init(lockTimeout: .seconds(30), statementTimeout: nil)) { connection in
            // Serialise concurrent seeders on the users table's id range.
            try connection.query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            let base = try connection.query("SELECT coalesce(max(id), 0) + 1 FROM users").single().decode(Int64.self, at: 0)
            let sync = ScheduleSync()
            _ = try sync.ensureUsers(Array(base..<(base + Int64(users))), on: connection)
            let start = Date(timeIntervalSince1970: 4_102_444_800 + Double(Int.random(in: 0..<1_000_000)) * 60)
            let report = try sync.sync(
                ScheduleSync.generate(count: slotCount, start: start, length: 1800, interviewer: label),
                closeMissing: false, on: connection)
            guard report.created == slotCount, let low = report.slotIDs.min(), let high = report.slotIDs.max() else {
                throw LoadTestError.setup("could not create \(slotCount) fresh slots")
            }
            return Seeded(slots: low...high, slotIDs: report.slotIDs, users: base...(base + Int64(users) - 1))
        }
    }

    /// One client: takes the next request index, sends it, records the answer.
    private func drive(
        client: Int, run: String, seeded: Seeded, stats: SendStatistics, http: HTTPClient, started: ContinuousClock.Instant
    ) async {
        let configuration = self.configuration
        while true {
            let index = stats.claim()
            guard index < configuration.requests else { return }
            if let rate = configuration.rate {
                let due = started + .milliseconds(Int64(Double(index) / rate * 1000))
                if due > .now { try? await Task.sleep(until: due) }
            }
            // Request i goes to slot i / requestsPerSlot, from user i: each slot gets its contention.
            let slot = seeded.slotIDs[(index / configuration.requestsPerSlot) % seeded.slotIDs.count]
            let user = seeded.users.lowerBound + Int64(index)
            var request = HTTPClientRequest(
                url: configuration.ingressURLs[index % configuration.ingressURLs.count] + "/v1/bookings")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer \(configuration.apiToken)")
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(
                ByteBuffer(string: #"{"request_id":"lt-\#(run)-\#(index)","user_id":\#(user),"slot_id":\#(slot)}"#))
            let sent = ContinuousClock.now
            do {
                let response = try await http.execute(request, timeout: .seconds(30))
                _ = try await response.body.collect(upTo: 64 * 1024)
                stats.record(status: Int(response.status.code), latency: sent.duration(to: .now))
            } catch {
                stats.recordError()
            }
        }
    }

    private func outcomeCounts(run: String, postgres: PostgresClient) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await postgres.query(
            "SELECT outcome, count(*) FROM inbox WHERE message_key LIKE \("api:lt-\(run)-%") GROUP BY outcome")
        {
            let (outcome, count) = try row.decode(String.self, Int.self)
            counts[outcome] = count
        }
        return counts
    }

    // MARK: Invariants

    private func duplicateKeyLines() -> Int? {
        guard let path = configuration.postgresLog,
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        else { return nil }
        return text.split(separator: "\n").filter { $0.contains("duplicate key value") }.count
    }

    private func checkInvariants(
        run: String, seeded: Seeded, accepted: Int, completed: Int, duplicatesBefore: Int?, postgres: PostgresClient
    ) async throws -> [LoadTestReport.Invariant] {
        var invariants: [LoadTestReport.Invariant] = []
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

        let booked = try await postgres.query(
            """
            SELECT count(*) FROM interviews
            WHERE status = 'active' AND time_slot_id BETWEEN \(seeded.slots.lowerBound) AND \(seeded.slots.upperBound)
            """
        ).single().decode(Int.self, at: 0)
        invariants.append(
            .init(
                name: "every contended slot booked exactly once", passed: booked == configuration.slots,
                detail: "\(booked) of \(configuration.slots) slots booked"))

        invariants.append(
            .init(
                name: "inbox count equals accepted requests", passed: completed == accepted,
                detail: "\(completed) inbox rows for \(accepted) accepted requests"))

        let unknown = try await postgres.query(
            """
            SELECT count(*) FROM inbox WHERE message_key LIKE \("api:lt-\(run)-%")
              AND outcome NOT IN ('booked', 'slot_taken', 'already_booked', 'unknown_slot', 'rejected')
            """
        ).single().decode(Int.self, at: 0)
        invariants.append(
            .init(
                name: "every accepted request has exactly one outcome", passed: unknown == 0 && completed == accepted,
                detail: unknown == 0 ? "one inbox row (primary key) with a final outcome per request"
                    : "\(unknown) requests without a final outcome"))

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

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return ((Double(seconds) + Double(attoseconds) / 1e18) * 1000).rounded() / 1000
    }
}

/// Counters and the HTTP latency histogram, shared by the client tasks.
final class SendStatistics: Sendable {
    private struct State {
        var next = 0
        var sent = 0
        var accepted = 0
        var rejected = 0
        var errors = 0
        var latency = LatencySummary.makeHistogram()
    }
    private let state = Mutex(State())

    func claim() -> Int {
        state.withLock { state in
            defer { state.next += 1 }
            return state.next
        }
    }

    func record(status: Int, latency: Duration) {
        let (seconds, attoseconds) = latency.components
        let micros = UInt64(max(1, seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
        state.withLock { state in
            state.sent += 1
            if status == 202 { state.accepted += 1 } else { state.rejected += 1 }
            _ = state.latency.record(micros)
        }
    }

    func recordError() {
        state.withLock { state in
            state.sent += 1
            state.errors += 1
        }
    }

    var sent: Int { state.withLock { $0.sent } }
    var accepted: Int { state.withLock { $0.accepted } }
    var rejected: Int { state.withLock { $0.rejected } }
    var errors: Int { state.withLock { $0.errors } }
    var httpLatency: LatencySummary { LatencySummary(state.withLock { $0.latency }) }

    func progressLine(elapsed: Duration, completed: Int?) -> String {
        let (sent, accepted, errors) = state.withLock { ($0.sent, $0.accepted, $0.errors + $0.rejected) }
        let seconds = max(0.001, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        let completedText = completed.map(String.init) ?? "…"
        return "sent \(sent)  accepted \(accepted)  completed \(completedText)  errors \(errors)  "
            + "rate \(Int(Double(sent) / seconds))/s  elapsed \(Int(seconds))s"
    }
}
