import ArgumentParser
import Foundation
import LeaseholdLoadTest
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdRuntime
import Logging

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
    func runStack(botAPI: FakeBotAPI?) async throws {
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
    struct Servers {
        var stack: LocalStack
        var cluster: LocalRedisCluster?
        /// What every role gets as `REDIS_URL`: the cluster's nodes, or the one Redis.
        var redisURL: String { cluster?.url ?? stack.redisURL }
    }

    /// What every role is given: its environment, and the secrets in it the load test needs.
    struct RoleSetup {
        var environment: [String: String]
        var token: String
        var telegramSecret: String
        /// The shard count the demo picked itself (a cluster, nothing set), for its own checks.
        var shardsSetHere: Int?
    }

    /// Where the roles answer: each ingress's base URL, each worker's health port (under
    /// --overload only, for the probes).
    struct Endpoints {
        var urls: [String]
        var workerPorts: [Int?]
    }

    /// The system once it runs, as the load, the chaos schedule and the checks reach it.
    struct DemoSystem {
        var servers: Servers
        var setup: RoleSetup
        var roles: RoleProcesses
        var endpoints: Endpoints
        var botAPI: FakeBotAPI?
        var signals: DemoSignals
    }
}
