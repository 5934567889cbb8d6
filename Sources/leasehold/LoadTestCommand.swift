import ArgumentParser
import Foundation
import LeaseholdLoadTest
import LeaseholdQueue

/// `leasehold loadtest`: drive concurrent bookings and verify every invariant.
struct LoadTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadtest",
        abstract: "Drive concurrent bookings through ingress, verify every invariant, compare with pgbench.",
        discussion: """
            Creates fresh slots and users in the database (POSTGRES_URL), then sends booking requests to the \
            --url ingress replicas from --concurrency clients (closed loop, or --rate per second): request i \
            books slot (i / --per-slot) mod --slots for user i mod --users. --input api posts /v1/bookings with \
            the bearer token (env: LEASEHOLD_API_TOKEN); --input telegram posts Telegram callback updates (data \
            book:<slot_id>, update IDs unique per run) to /telegram/webhook with the secret \
            (env: TELEGRAM_WEBHOOK_SECRET). Secrets come from the environment only. The run ends after --requests \
            (default --slots × --per-slot) or --duration seconds. A progress line (sent, accepted, completed, \
            errors, current rates) goes to standard error: rewritten in place on a terminal, a plain line every \
            5 s otherwise. Then it waits (bounded by --wait-timeout) for every accepted request's outcome in the \
            inbox and checks against PostgreSQL: no slot with two active interviews, each contended slot booked \
            once by the request told booked, inbox count equals accepted requests, every accepted request one \
            final outcome, and (with --postgres-log) zero duplicate key errors. Then it runs the same booking \
            transaction with pgbench at the same concurrency and contention, statement by statement (simple \
            protocol) and as one prepared call of leasehold_book (as the worker sends it), and prints both \
            figures. --plot \
            FILE.svg draws latency and throughput per second. --ingress-only measures ingress alone, for a system \
            with no worker consuming: it sends the same requests and reports accepted requests per second and HTTP \
            latency, waits for no outcome, checks no booking and runs no pgbench; afterwards it removes the run's \
            entries from the stream and (--input api) their result and digest keys from Redis (--redis-url or \
            env REDIS_URL, required; key prefix --redis-prefix or env LEASEHOLD_REDIS_PREFIX, default lh:), \
            so a worker started later does not process them, and checks that nothing of the run is left and that \
            no worker processed any of it. Exit status: 0 when every invariant holds, 1 when one fails, 2 when \
            the test could not run (nothing accepted at all counts), 64 for bad options or a missing secret or \
            Redis URL (nothing is sent or created then).
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(
        name: .customLong("url"), help: "Ingress base URL; repeat for several replicas (default http://127.0.0.1:8080)."
    )
    var urls: [String] = []

    @OptionGroup var load: LoadTestOptions

    @Option(help: "PostgreSQL server log, for the duplicate key check (env: POSTGRES_LOG).")
    var postgresLog: String?

    func validate() throws {
        try load.validateRecovery()
        if let problem = loadTestConfiguration().problem { throw ValidationError(problem) }
    }

    /// The configuration from the flags and the environment (API token: env LEASEHOLD_API_TOKEN;
    /// Telegram secret: env TELEGRAM_WEBHOOK_SECRET).
    func loadTestConfiguration() -> LoadTestConfiguration {
        let environment = ProcessInfo.processInfo.environment
        return load.configuration(
            urls: urls.isEmpty
                ? ["http://127.0.0.1:8080"] : urls.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 },
            apiToken: environment["LEASEHOLD_API_TOKEN"] ?? "",
            telegramSecret: environment["TELEGRAM_WEBHOOK_SECRET"] ?? "", postgresURL: common.postgresURL,
            postgresLog: postgresLog ?? environment["POSTGRES_LOG"],
            // No default here: --ingress-only deletes entries, so it must be told which Redis.
            redisURL: common.redisURLFlag ?? environment["REDIS_URL"], redisPrefix: common.redisKeys.prefix,
            redisShards: common.redisKeys.shards)
    }

    func run() async throws {
        _ = try common.bootstrapLogging(label: "leasehold.loadtest")
        let progress = ProgressPrinter()
        let report: LoadTestReport
        do {
            report = try await LoadTest(configuration: loadTestConfiguration(), progress: progress).run()
        } catch {
            progress.finish()
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        load.writePlot(report, progress: progress)
        print(load.json ? report.json : report.table)
        if !report.passed { throw ExitCode(1) }
    }
}
