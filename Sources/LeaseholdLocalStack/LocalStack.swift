import Foundation
import LeaseholdPostgres
import LeaseholdRedis
import Logging

/// Options for ``LocalStack``; every field has a default.
public struct LocalStackOptions: Sendable {
    /// Where data, logs and the `env` file live. Default: `./.leasehold/local`.
    public var directory: URL
    /// `nil` picks a free port on 127.0.0.1 (kept across restarts of the same stack).
    public var postgresPort: Int?
    public var redisPort: Int?
    /// The database created for Leasehold.
    public var database: String
    /// Extra PostgreSQL settings (`-c name=value`), e.g. `["fsync": "off"]` for throwaway test data.
    public var postgresSettings: [String: String]
    /// How long each server may take to accept connections.
    public var startupTimeout: Duration

    public init(
        directory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
            .appendingPathComponent(".leasehold/local"),
        postgresPort: Int? = nil, redisPort: Int? = nil, database: String = "leasehold",
        postgresSettings: [String: String] = [:], startupTimeout: Duration = .seconds(60)
    ) {
        self.directory = directory
        self.postgresPort = postgresPort
        self.redisPort = redisPort
        self.database = database
        self.postgresSettings = postgresSettings
        self.startupTimeout = startupTimeout
    }
}

/// Why the local stack could not start or stop.
public enum LocalStackError: Error, CustomStringConvertible {
    case binaryNotFound(String, hint: String)
    case commandFailed(command: String, status: Int32, logTail: String)
    case exitedEarly(server: String, status: Int32, logTail: String)
    case notReady(server: String, after: Duration, lastError: String, logTail: String)
    case invalidDatabaseName(String)
    case userMissing(String)

    public var description: String {
        switch self {
        case .binaryNotFound(let name, let hint): "\(name) not found: \(hint)"
        case .commandFailed(let command, let status, let log): "\(command) exited with \(status):\n\(log)"
        case .exitedEarly(let server, let status, let log):
            "\(server) exited with status \(status) while starting:\n\(log)"
        case .notReady(let server, let after, let lastError, let log):
            "\(server) did not accept connections within \(after) (last error: \(lastError)):\n\(log)"
        case .invalidDatabaseName(let name): "database name \(name) must be lower-case letters, digits and _"
        case .userMissing(let user): "running as root needs the \(user) system user (installed by Debian's postgresql)"
        }
    }
}

/// The embedded default: PostgreSQL and Redis from the installed Debian binaries, run as child
/// processes on 127.0.0.1, with their data in a project-local directory.
///
/// Used by `leasehold local`, by the demo, and by tests that need servers of their own to
/// restart or kill. PostgreSQL refuses to run as root, so as root the server runs as the
/// `postgres` user (through util-linux `setpriv`, which `exec`s, so the child *is* postgres).
///
/// Layout of ``LocalStackOptions/directory``: `postgres/` (PGDATA), `redis/` (AOF), `postgres.log`,
/// `redis.log`, and `env` (shell exports of `POSTGRES_URL` and `REDIS_URL`).
public actor LocalStack {
    public let options: LocalStackOptions
    public nonisolated let postgresPort: Int
    public nonisolated let redisPort: Int
    private let logger: Logger
    private var postgres: ChildProcess?
    private var redis: ChildProcess?

    public init(options: LocalStackOptions = LocalStackOptions(), logger: Logger = Logger(label: "leasehold.local"))
        throws
    {
        guard options.database.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" }), !options.database.isEmpty
        else { throw LocalStackError.invalidDatabaseName(options.database) }
        self.options = options
        self.logger = logger
        self.postgresPort = try options.postgresPort ?? freeLoopbackPort()
        self.redisPort = try options.redisPort ?? freeLoopbackPort()
    }

    public nonisolated var postgresURL: String {
        "postgres://postgres@127.0.0.1:\(postgresPort)/\(options.database)?sslmode=disable"
    }

    public nonisolated var redisURL: String { "redis://127.0.0.1:\(redisPort)/0" }

    /// The postmaster's process ID while PostgreSQL runs (its backends are its children).
    public var postgresProcessID: Int32? { postgres?.pid }

    /// redis-server's process ID while Redis runs.
    public var redisProcessID: Int32? { redis?.pid }

    public nonisolated var postgresLog: URL { options.directory.appendingPathComponent("postgres.log") }
    public nonisolated var redisLog: URL { options.directory.appendingPathComponent("redis.log") }
    private nonisolated var postgresData: URL { options.directory.appendingPathComponent("postgres") }
    private nonisolated var redisData: URL { options.directory.appendingPathComponent("redis") }

    /// Starts both servers (PostgreSQL first), creates the database, and writes the `env` file.
    public func start() async throws {
        try FileManager.default.createDirectory(at: options.directory, withIntermediateDirectories: true)
        try await startPostgres()
        try await startRedis()
        let env = "export POSTGRES_URL='\(postgresURL)'\nexport REDIS_URL='\(redisURL)'\n"
        try env.write(to: options.directory.appendingPathComponent("env"), atomically: true, encoding: .utf8)
    }

    /// Stops both servers cleanly (Redis first, so nothing new arrives while PostgreSQL stops).
    public func stop() async {
        await stopRedis()
        await stopPostgres()
    }

    // MARK: PostgreSQL

    /// Starts PostgreSQL (initialising the data directory the first time) and waits until the
    /// Leasehold database accepts connections.
    public func startPostgres() async throws {
        guard postgres == nil else { return }
        let binaries = try Self.postgresBinaries()
        let runAs = try Self.dropRootPrefix()
        try FileManager.default.createDirectory(at: options.directory, withIntermediateDirectories: true)
        try Self.makeTraversable(options.directory)

        if !FileManager.default.fileExists(atPath: postgresData.appendingPathComponent("PG_VERSION").path) {
            logger.info("initialising PostgreSQL data directory", metadata: ["path": "\(postgresData.path)"])
            try FileManager.default.createDirectory(at: postgresData, withIntermediateDirectories: true)
            try Self.giveToPostgresUser(postgresData)
            try await runToCompletion(
                runAs.executable ?? binaries.appendingPathComponent("initdb"),
                runAs.arguments + (runAs.executable == nil ? [] : [binaries.appendingPathComponent("initdb").path])
                    + [
                        "-D", postgresData.path, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
                        "--no-instructions",
                    ],
                log: postgresLog)
        }
        await Self.stopStale(pidFile: postgresData.appendingPathComponent("postmaster.pid"), signal: SIGINT)

        var arguments = [
            "-D", postgresData.path, "-p", String(postgresPort),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            "-c", "max_connections=300", "-c", "log_min_messages=warning",
        ]
        for (name, value) in options.postgresSettings.sorted(by: { $0.key < $1.key }) {
            arguments += ["-c", "\(name)=\(value)"]
        }
        let postgresBinary = binaries.appendingPathComponent("postgres")
        let server = try ChildProcess(
            name: "postgres", executable: runAs.executable ?? postgresBinary,
            arguments: runAs.arguments + (runAs.executable == nil ? [] : [postgresBinary.path]) + arguments,
            log: postgresLog)
        postgres = server

        let admin = PostgresConfiguration(
            connectionString: "postgres://postgres@127.0.0.1:\(postgresPort)/postgres?sslmode=disable",
            connectTimeoutSeconds: 2, applicationName: "leasehold-local")
        let database = options.database
        try await waitUntilAnswering(server, log: postgresLog) {
            try await PostgresClient.withConnection(to: admin) { connection in
                let exists = try await connection.query("SELECT 1 FROM pg_database WHERE datname = \(database)")
                if exists.isEmpty { try await connection.simpleQuery("CREATE DATABASE \(database)") }
            }
        }
        logger.info("PostgreSQL is up", metadata: ["url": "\(postgresURL)", "pid": "\(server.pid)"])
    }

    /// Stops PostgreSQL: `SIGINT` is its "fast" shutdown (roll back sessions, checkpoint, exit);
    /// `SIGQUIT` its "immediate" one (no checkpoint, crash recovery at the next start).
    public func stopPostgres(signal: Int32 = SIGINT) async {
        guard let server = postgres else { return }
        await server.stop(signal: signal, timeout: .seconds(60))
        postgres = nil
    }

    public func restartPostgres() async throws {
        await stopPostgres()
        try await startPostgres()
    }

    // MARK: Redis

    /// Starts Redis with the append-only file on (so a restart keeps every accepted entry) and
    /// waits until it answers `PING`.
    public func startRedis() async throws {
        guard redis == nil else { return }
        let binary = try Self.findOnPath("redis-server", hint: "install Debian's redis-server package")
        try FileManager.default.createDirectory(at: redisData, withIntermediateDirectories: true)
        let pidFile = redisData.appendingPathComponent("redis.pid")
        await Self.stopStale(pidFile: pidFile, signal: SIGTERM)
        let server = try ChildProcess(
            name: "redis-server", executable: binary,
            arguments: [
                "--bind", "127.0.0.1", "--port", String(redisPort), "--dir", redisData.path,
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--daemonize", "no", "--pidfile", pidFile.path, "--logfile", "",
            ],
            log: redisLog)
        redis = server
        let configuration = RedisConfiguration(
            host: "127.0.0.1", port: redisPort, connectTimeout: .seconds(2), commandTimeout: .seconds(2))
        try await waitUntilAnswering(server, log: redisLog) {
            let client = RedisClient(configuration: configuration, label: "leasehold.local.probe")
            defer { client.close() }
            _ = try await client.send("PING")
        }
        logger.info("Redis is up", metadata: ["url": "\(redisURL)", "pid": "\(server.pid)"])
    }

    /// Stops Redis (`SIGTERM`: flushes the append-only file and exits).
    public func stopRedis(signal: Int32 = SIGTERM) async {
        guard let server = redis else { return }
        await server.stop(signal: signal, timeout: .seconds(30))
        redis = nil
    }

    public func restartRedis() async throws {
        await stopRedis()
        try await startRedis()
    }

    // MARK: Helpers

    /// Polls `probe` until it succeeds, the server exits, or the startup timeout passes.
    private func waitUntilAnswering(
        _ server: ChildProcess, log: URL, probe: @escaping @Sendable () async throws -> Void
    ) async throws {
        let deadline = ContinuousClock.now + options.startupTimeout
        var lastError = "none"
        while true {
            if let status = server.exitStatus {
                throw LocalStackError.exitedEarly(server: server.name, status: status, logTail: tail(of: log))
            }
            do {
                try await probe()
                return
            } catch {
                lastError = "\(error)"
            }
            if ContinuousClock.now >= deadline {
                await server.stop(signal: SIGTERM, timeout: .seconds(10))
                throw LocalStackError.notReady(
                    server: server.name, after: options.startupTimeout, lastError: lastError, logTail: tail(of: log))
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// A server left running by a stack that was killed holds the data directory; stop it.
    private static func stopStale(pidFile: URL, signal: Int32) async {
        guard let text = try? String(contentsOf: pidFile, encoding: .utf8),
            let pid = Int32(text.split(separator: "\n").first?.trimmingCharacters(in: .whitespaces) ?? ""),
            pid > 0, kill(pid, 0) == 0
        else { return }
        kill(pid, signal)
        for _ in 0..<600 where kill(pid, 0) == 0 {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// `/usr/lib/postgresql/<newest>/bin`, or `$LEASEHOLD_PG_BINDIR`.
    public static func postgresBinaries() throws -> URL {
        if let configured = ProcessInfo.processInfo.environment["LEASEHOLD_PG_BINDIR"], !configured.isEmpty {
            return URL(fileURLWithPath: configured)
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap(Int.init).sorted()
        for version in versions.reversed() {
            let bin = URL(fileURLWithPath: "\(root)/\(version)/bin")
            if FileManager.default.isExecutableFile(atPath: bin.appendingPathComponent("postgres").path) { return bin }
        }
        throw LocalStackError.binaryNotFound(
            "postgres", hint: "install Debian's postgresql package, or set LEASEHOLD_PG_BINDIR")
    }

    static func findOnPath(_ name: String, hint: String) throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/bin"] {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw LocalStackError.binaryNotFound(name, hint: hint)
    }

    /// As root: `setpriv … --` to run as `postgres`; otherwise nothing.
    private static func dropRootPrefix() throws -> (executable: URL?, arguments: [String]) {
        guard geteuid() == 0 else { return (nil, []) }
        guard getpwnam("postgres") != nil else { throw LocalStackError.userMissing("postgres") }
        let setpriv = try findOnPath("setpriv", hint: "install Debian's util-linux package")
        return (setpriv, ["--reuid=postgres", "--regid=postgres", "--init-groups", "--"])
    }

    private static func giveToPostgresUser(_ url: URL) throws {
        guard geteuid() == 0, let user = getpwnam("postgres") else { return }
        guard chown(url.path, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
            throw LocalStackError.commandFailed(command: "chown postgres \(url.path)", status: errno, logTail: "")
        }
        chmod(url.path, 0o700)
    }

    private static func makeTraversable(_ url: URL) throws {
        if geteuid() == 0 { chmod(url.path, 0o755) }
    }
}
