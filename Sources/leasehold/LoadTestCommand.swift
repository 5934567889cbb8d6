import ArgumentParser
import Foundation
import LeaseholdLoadTest

/// `leasehold loadtest`: drive concurrent bookings and verify every invariant.
struct LoadTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadtest",
        abstract: "Drive concurrent bookings through ingress, verify every invariant, compare with pgbench.",
        discussion: """
            Creates fresh slots and users in the database (POSTGRES_URL), sends --slots × --per-slot \
            POST /v1/bookings requests from --concurrency clients (closed loop, or --rate per second) to the \
            --url ingress replicas, shows a progress line, waits (bounded) for every accepted request's outcome, \
            and checks against PostgreSQL: no slot with two active interviews, every contended slot booked \
            once, inbox count equals accepted requests, every request one final outcome, and (with \
            --postgres-log) zero duplicate key errors. Then runs the same booking transaction with pgbench at \
            the same concurrency and contention and prints both figures. Exit status: 0 when every invariant \
            holds, 1 when one fails, 2 when the test could not run. The bearer token comes from the environment \
            (env: LEASEHOLD_API_TOKEN); pgbench from the newest /usr/lib/postgresql/*/bin (env: LEASEHOLD_PG_BINDIR).
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .customLong("url"), help: "Ingress base URL; repeat for several replicas (default http://127.0.0.1:8080).")
    var urls: [String] = []

    @Option(help: "Fresh slots to book.")
    var slots: Int = 100

    @Option(help: "Requests per slot (contention): one wins, the others get slot_taken.")
    var perSlot: Int = 20

    @Option(help: "Concurrent clients.")
    var concurrency: Int = 32

    @Option(help: "Fixed arrival rate (requests/s) instead of a closed loop.")
    var rate: Double?

    @Option(help: "Seconds to wait for outstanding outcomes after sending.")
    var waitTimeout: Int = 120

    @Option(help: "PostgreSQL server log, for the duplicate key check (env: POSTGRES_LOG).")
    var postgresLog: String?

    @Flag(help: "Skip the pgbench comparison.")
    var noPgbench = false

    @Flag(help: "Print the report as JSON (on standard output) instead of a table.")
    var json = false

    func validate() throws {
        guard (1...1_000_000).contains(slots) else { throw ValidationError("--slots must be 1...1000000") }
        guard (1...100_000).contains(perSlot) else { throw ValidationError("--per-slot must be 1...100000") }
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency must be 1...4096") }
        if let rate, !(rate > 0) { throw ValidationError("--rate must be positive") }
        for url in urls where !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
            throw ValidationError("--url \(url) must start with http:// or https://")
        }
    }

    func run() async throws {
        _ = common.bootstrapLogging(label: "leasehold.loadtest")
        let environment = ProcessInfo.processInfo.environment
        let apiToken = environment["LEASEHOLD_API_TOKEN"] ?? ""
        guard !apiToken.isEmpty else {
            throw ValidationError("LEASEHOLD_API_TOKEN must be set to the ingress's bearer token")
        }
        let configuration = LoadTestConfiguration(
            ingressURLs: urls.isEmpty ? ["http://127.0.0.1:8080"] : urls.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 },
            apiToken: apiToken, postgresURL: common.postgresURL, slots: slots, requestsPerSlot: perSlot,
            concurrency: concurrency, rate: rate, completionTimeout: .seconds(waitTimeout),
            postgresLog: postgresLog ?? environment["POSTGRES_LOG"], pgbench: !noPgbench, progress: true)
        let interactive = isatty(STDERR_FILENO) == 1
        let test = LoadTest(configuration: configuration) { line in
            // A live line on a terminal; one line per update in logs and CI.
            FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + line : line + "\n").utf8))
        }
        let report: LoadTestReport
        do {
            report = try await test.run()
        } catch {
            FileHandle.standardError.write(Data("\nerror: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
        print(json ? report.json : report.table)
        if !report.passed { throw ExitCode(1) }
    }
}
