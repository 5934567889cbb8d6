import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres
import Synchronization

/// A PostgreSQL primary and a synchronous streaming standby of it, run by a test on loopback, for
/// failing over under load: ``killPrimary()`` is the primary's host dying, ``promoteStandby()``
/// the operator's (or the platform's) failover.
///
/// Set up as Runbooks/postgres-restart.md describes: `initdb` for the primary (`wal_level=replica`),
/// `pg_basebackup -R` (with a replication slot) for the standby, then
/// `synchronous_standby_names = '*'` on the primary once the standby streams, with
/// `synchronous_commit = on` (the default): a COMMIT returns only after the standby has the commit
/// record, so no transaction a client saw commit is missing on the standby.
///
/// The binaries are `$LEASEHOLD_PGBIN` (set by `.ci/servers`), else those ``LocalStack`` uses. As
/// root every PostgreSQL program runs as the `postgres` user (through `setpriv`, which `exec`s, so
/// the server's process ID is the postmaster's). `fsync` is off: the data is thrown away, and a
/// killed process (not a lost machine) keeps what it wrote in the page cache anyway.
public final class ReplicatedPostgres: Sendable {
    public let directory: URL
    public let primaryPort: Int
    public let standbyPort: Int
    public let database: String
    private let binaries: URL
    private let servers = Mutex<[String: ChildProcess]>([:])

    private var primaryData: URL { directory.appendingPathComponent("primary") }
    private var standbyData: URL { directory.appendingPathComponent("standby") }

    /// Starts both servers, creates `database`, and returns once the standby is the primary's
    /// synchronous standby.
    public static func start(database: String = "leasehold") async throws -> ReplicatedPostgres {
        let directory = try makeTemporaryDirectory("pg-failover")
        let ports = try LowPorts.free(2)
        let (primaryPort, standbyPort) = (ports[0], ports[1])
        let pair = ReplicatedPostgres(
            directory: directory, primaryPort: primaryPort, standbyPort: standbyPort, database: database)
        do {
            try await pair.setUp()
        } catch {
            await pair.stop()
            throw error
        }
        return pair
    }

    private init(directory: URL, primaryPort: Int, standbyPort: Int, database: String) {
        self.directory = directory
        self.primaryPort = primaryPort
        self.standbyPort = standbyPort
        self.database = database
        let configured = ProcessInfo.processInfo.environment["LEASEHOLD_PGBIN"] ?? ""
        self.binaries =
            configured.isEmpty
            ? ((try? LocalStack.postgresBinaries()) ?? URL(fileURLWithPath: "/usr/lib/postgresql/15/bin"))
            : URL(fileURLWithPath: configured)
    }

    /// The multi-host URL the roles get: the standby listed first, so every connection shows that
    /// `target_session_attrs=read-write` passes over a read-only node.
    public var url: String {
        "postgres://postgres@127.0.0.1:\(standbyPort),127.0.0.1:\(primaryPort)/\(database)"
            + "?sslmode=disable&target_session_attrs=read-write&connect_timeout=2"
    }

    /// One node, whatever its role (`target_session_attrs=any`), for the test's own checks.
    public func nodeConfiguration(port: Int) -> PostgresConfiguration {
        PostgresConfiguration(
            connectionString: "postgres://postgres@127.0.0.1:\(port)/\(database)?sslmode=disable",
            connectTimeoutSeconds: 2, applicationName: "leasehold-tests", targetSessionAttributes: "any")
    }

    /// The server logs, for a failing test's message.
    public var logs: String {
        ["primary", "standby", "setup"].map { name in
            let text = (try? String(contentsOf: log(name), encoding: .utf8)) ?? ""
            return "--- \(name).log\n" + text.split(separator: "\n").suffix(30).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    // MARK: Failover

    /// The primary's host dies: SIGKILL for the postmaster and every process it started at once,
    /// so each client connection is cut without a goodbye and nothing is flushed or handed over.
    public func killPrimary() async {
        guard let primary = servers.withLock({ $0.removeValue(forKey: "primary") }) else { return }
        let children = Self.children(of: primary.pid)
        kill(primary.pid, SIGKILL)
        for child in children { kill(child, SIGKILL) }
        _ = await primary.waitForExit(timeout: .seconds(10))
    }

    /// `pg_ctl promote -w`: the standby ends recovery and accepts writes. It has no standby of its
    /// own, and `synchronous_standby_names` was set on the old primary only, so its commits do not
    /// wait for one.
    public func promoteStandby() async throws {
        try await run("pg_ctl", ["promote", "-D", standbyData.path, "-w", "-t", "60"])
        try await waitUntil("the promoted standby accepts writes", timeout: .seconds(60)) {
            let recovery = try await PostgresClient.withConnection(
                to: self.nodeConfiguration(port: self.standbyPort)
            ) { connection in
                try await connection.simpleQuery("SELECT pg_is_in_recovery()").single().decode(String.self, at: 0)
            }
            return recovery == "f"
        }
    }

    /// Stops whatever still runs (fast shutdown, then SIGKILL) and removes the data.
    public func stop() async {
        let running = servers.withLock { servers in
            defer { servers.removeAll() }
            return Array(servers.values)
        }
        for server in running {
            let children = Self.children(of: server.pid)
            await server.stop(signal: SIGINT, timeout: .seconds(30))
            for child in children { kill(child, SIGKILL) }
        }
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: Set-up

    private func setUp() async throws {
        if geteuid() == 0, let user = getpwnam("postgres") {
            chown(directory.path, user.pointee.pw_uid, user.pointee.pw_gid)
        }
        try await run(
            "initdb",
            [
                "-D", primaryData.path, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
                "--no-instructions",
            ])
        // initdb's pg_hba.conf lets 127.0.0.1 connect for replication too (with --auth=trust).
        try await startServer("primary", data: primaryData, port: primaryPort, settings: ["wal_level": "replica"])
        try await waitUntil("the primary accepts connections", timeout: .seconds(60)) {
            try await PostgresClient.withConnection(to: self.adminConfiguration(port: self.primaryPort)) {
                try await $0.simpleQuery("CREATE DATABASE \(self.database)")
            }
            return true
        }
        try await run(
            "pg_basebackup",
            [
                "-D", standbyData.path, "-h", "127.0.0.1", "-p", String(primaryPort), "-U", "postgres", "-R",
                "-X", "stream", "-C", "-S", "leasehold_standby", "--checkpoint=fast",
            ])
        try await startServer("standby", data: standbyData, port: standbyPort, settings: [:])
        try await waitUntil("the standby streams", timeout: .seconds(60)) {
            try await self.replicationState() != nil
        }
        // Synchronous only now: with no standby attached, every commit would wait.
        try await PostgresClient.withConnection(to: adminConfiguration(port: primaryPort)) { admin in
            try await admin.simpleQuery("ALTER SYSTEM SET synchronous_standby_names = '*'")
            try await admin.simpleQuery("SELECT pg_reload_conf()")
        }
        try await waitUntil("the standby is synchronous", timeout: .seconds(60)) {
            try await self.replicationState() == "sync"
        }
    }

    /// `pg_stat_replication.sync_state` of the standby on the primary; `nil` while it is not streaming.
    private func replicationState() async throws -> String? {
        let rows = try await PostgresClient.withConnection(to: adminConfiguration(port: primaryPort)) {
            try await $0.simpleQuery("SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'")
        }
        return try rows.rows.first?.decode(String.self, at: 0)
    }

    private func adminConfiguration(port: Int) -> PostgresConfiguration {
        PostgresConfiguration(
            connectionString: "postgres://postgres@127.0.0.1:\(port)/postgres?sslmode=disable",
            connectTimeoutSeconds: 2, applicationName: "leasehold-tests", targetSessionAttributes: "any")
    }

    private func startServer(_ name: String, data: URL, port: Int, settings: [String: String]) async throws {
        var arguments = [
            "-D", data.path, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            "-c", "fsync=off", "-c", "max_connections=100", "-c", "log_min_messages=warning",
        ]
        for (setting, value) in settings.sorted(by: { $0.key < $1.key }) { arguments += ["-c", "\(setting)=\(value)"] }
        let (executable, prefix) = asPostgres(binaries.appendingPathComponent("postgres"))
        let server = try ChildProcess(
            name: name, executable: executable, arguments: prefix + arguments, log: log(name))
        servers.withLock { $0[name] = server }
    }

    /// Runs a PostgreSQL program to completion (as `postgres` when root); throws with its output.
    private func run(_ program: String, _ arguments: [String]) async throws {
        let (executable, prefix) = asPostgres(binaries.appendingPathComponent(program))
        let process = try ChildProcess(
            name: program, executable: executable, arguments: prefix + arguments, log: log("setup"))
        guard await process.waitForExit(timeout: .seconds(120)) else {
            await process.stop(signal: SIGKILL, timeout: .seconds(5))
            throw TestSetupError("\(program) did not finish in 120 s:\n\(logs)")
        }
        guard process.exitStatus == 0 else {
            throw TestSetupError("\(program) \(arguments.joined(separator: " ")) failed:\n\(logs)")
        }
    }

    private func asPostgres(_ binary: URL) -> (URL, [String]) {
        guard geteuid() == 0 else { return (binary, []) }
        return (
            URL(fileURLWithPath: "/usr/bin/setpriv"),
            ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", binary.path]
        )
    }

    private func log(_ name: String) -> URL { directory.appendingPathComponent("\(name).log") }

    /// Polls `condition` until it is true; a server that exited meanwhile ends the wait with its log.
    private func waitUntil(
        _ what: String, timeout: Duration, _ condition: @escaping @Sendable () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        var lastError = "none"
        while true {
            do {
                if try await condition() { return }
            } catch {
                lastError = "\(error)"
            }
            for (name, server) in servers.withLock({ $0 }) where !server.isRunning {
                throw TestSetupError("PostgreSQL \(name) exited while waiting until \(what):\n\(logs)")
            }
            guard ContinuousClock.now < deadline else {
                throw TestSetupError("not true after \(timeout): \(what) (last error: \(lastError))\n\(logs)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// The processes whose parent is `pid` (a postmaster's backends and auxiliary processes).
    private static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let child = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            // After "pid (comm)": state, then the parent's ID.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid ? child : nil
        }
    }

}
