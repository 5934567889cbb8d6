import ArgumentParser
import Foundation
import LeaseholdLoadTest

/// The load-shape flags `leasehold loadtest` and `leasehold demo` share.
struct LoadTestOptions: ParsableArguments {
    @Option(
        help:
            "What to send: api (POST /v1/bookings), telegram (callback updates to /telegram/webhook) or mixed (both, alternating); default api (demo --chaos: mixed)."
    )
    var input: LoadTestInput?

    @Option(help: "Fresh slots to book.")
    var slots: Int = 100

    @Option(help: "Requests per slot in a row (the contention): one wins, the others get slot_taken.")
    var perSlot: Int = 20

    @Option(help: "Fresh users sending the requests, request i from user i mod N (default: one per request).")
    var users: Int?

    @Option(help: "Requests to send (default --slots × --per-slot; more cycle through the slots again).")
    var requests: Int?

    @Option(help: "Send for this many seconds instead of a request count.")
    var duration: Int?

    @Option(help: "Concurrent clients.")
    var concurrency: Int = 32

    @Option(
        help:
            "Fixed arrival rate (requests/s) instead of a closed loop; HTTP latency then counts from the scheduled time."
    )
    var rate: Double?

    @Option(
        help: """
            Overload run: after --duration at --rate (the flood), send at this rate (requests/s) for \
            --recovery-duration, and report how the system shed the flood and how soon after it ended it was \
            back at full throughput (refusals ended, every second committing at least 90% of what was sent).
            """)
    var recoveryRate: Double?

    @Option(help: "Seconds of the overload run's recovery phase (default 20 with --recovery-rate).")
    var recoveryDuration: Int?

    @Option(
        help: """
            A health endpoint to ask every 100 ms while sending (a new connection each time, as an \
            orchestrator's check does), e.g. http://127.0.0.1:8080/readyz; repeat for several. The report gives \
            each one's p50, p99 and max answer time and the probes over 100 ms; any answer but 200 fails the run.
            """)
    var probe: [String] = []

    @Option(help: "Seconds to wait for outstanding outcomes after sending.")
    var waitTimeout: Int = 120

    @Option(help: "Write a latency-over-time plot (SVG) to this file.")
    var plot: String?

    @Flag(
        help:
            "Skip the pgbench comparison (pgbench comes from the newest /usr/lib/postgresql/*/bin; env: LEASEHOLD_PG_BINDIR)."
    )
    var noPgbench = false

    @Flag(help: "Print the report as JSON (on standard output) instead of a table.")
    var json = false

    @Flag(
        help: """
            Measure ingress alone: count accepted requests per second and HTTP latency, wait for no outcome, \
            check no booking, skip pgbench, then remove the run's stream entries and result/digest keys from Redis.
            """
    )
    var ingressOnly = false

    func validate() throws {
        guard (1...86_400).contains(waitTimeout) else { throw ValidationError("--wait-timeout must be 1...86400") }
        if let duration, !(1...86_400).contains(duration) {
            throw ValidationError("--duration must be 1...86400 seconds")
        }
        if let plot {
            guard plot.lowercased().hasSuffix(".svg") else {
                throw ValidationError("--plot \(plot): the plot is SVG; name the file *.svg")
            }
            let directory = URL(fileURLWithPath: plot).deletingLastPathComponent().path
            guard FileManager.default.isWritableFile(atPath: directory) else {
                throw ValidationError("--plot \(plot): directory \(directory) is not writable")
            }
        }
        // The checks that need no secrets and no URLs (the commands add those).
        if let problem = configuration(
            urls: ["http://127.0.0.1"], apiToken: "-", telegramSecret: "-", postgresURL: "", redisURL: "-"
        ).problem {
            throw ValidationError(problem)
        }
    }

    /// Refuses `--recovery-duration` without `--recovery-rate` (the demo's `--overload` supplies
    /// the rate itself, so it checks this only without it).
    func validateRecovery() throws {
        if recoveryDuration != nil && recoveryRate == nil {
            throw ValidationError("--recovery-duration needs --recovery-rate")
        }
    }

    /// The load test these flags describe.
    func configuration(
        urls: [String], apiToken: String, telegramSecret: String, postgresURL: String, postgresLog: String? = nil,
        redisURL: String? = nil, redisPrefix: String = "lh:", redisShards: Int? = nil
    ) -> LoadTestConfiguration {
        var configuration = LoadTestConfiguration(
            ingressURLs: urls, input: input ?? .api, apiToken: apiToken, telegramSecret: telegramSecret,
            postgresURL: postgresURL, slots: slots, requestsPerSlot: perSlot, users: users, requestCount: requests,
            duration: duration.map { .seconds($0) }, concurrency: concurrency, rate: rate,
            completionTimeout: .seconds(waitTimeout), postgresLog: postgresLog, pgbench: !noPgbench,
            recordTimeline: plot != nil, ingressOnly: ingressOnly, redisURL: redisURL, redisPrefix: redisPrefix,
            redisShards: redisShards)
        configuration.recovery = recoveryRate.map {
            RateSchedule.Phase(rate: $0, duration: .seconds(recoveryDuration ?? 20))
        }
        configuration.probes += probe.map { HealthProbe.Target(name: $0, url: $0) }
        return configuration
    }

    /// Writes the plot when `--plot` asked for one; a failure is reported, not fatal (the report
    /// still prints).
    func writePlot(_ report: LoadTestReport, progress: ProgressPrinter) {
        guard let plot, let svg = report.plot else { return }
        do {
            try svg.write(toFile: plot, atomically: true, encoding: .utf8)
            progress.note("latency plot written to \(plot)")
        } catch {
            progress.note("error: could not write the plot to \(plot): \(error)")
        }
    }
}

extension LoadTestInput: ExpressibleByArgument {}
