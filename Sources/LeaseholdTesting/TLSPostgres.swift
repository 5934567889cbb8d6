import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres

/// A self-signed certificate and its key for `127.0.0.1` (subject and IP subject alternative
/// name), made with the `openssl` command-line tool, for TLS servers a test runs on loopback.
public struct SelfSignedCertificate: Sendable {
    public let certificate: URL
    public let key: URL

    /// Writes `certificate.pem` and `key.pem` (an RSA key, no passphrase) into `directory`. As
    /// root both files are given to the `postgres` user: PostgreSQL refuses a key file that
    /// another user owns or that others can read.
    public static func make(in directory: URL) async throws -> SelfSignedCertificate {
        let certificate = directory.appendingPathComponent("certificate.pem")
        let key = directory.appendingPathComponent("key.pem")
        let log = directory.appendingPathComponent("openssl.log")
        let process = try ChildProcess(
            name: "openssl", executable: URL(fileURLWithPath: "/usr/bin/openssl"),
            arguments: [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key.path, "-out", certificate.path,
                "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            ],
            log: log)
        guard await process.waitForExit(timeout: .seconds(60)), process.exitStatus == 0 else {
            await process.stop(signal: SIGKILL, timeout: .seconds(5))
            throw TestSetupError("openssl req did not make a certificate:\n\(process.output)")
        }
        chmod(key.path, 0o600)
        if geteuid() == 0, let user = getpwnam("postgres") {
            for file in [certificate, key] { chown(file.path, user.pointee.pw_uid, user.pointee.pw_gid) }
        }
        return SelfSignedCertificate(certificate: certificate, key: key)
    }
}

/// `stunnel4` in front of a PostgreSQL server, speaking PostgreSQL's TLS negotiation
/// (`protocol = pgsql`: it answers the client's SSLRequest with `S`, then runs the TLS handshake)
/// and passing the plaintext on to the server, which sees an ordinary unencrypted connection.
///
/// Why a test wants one beside a server with `ssl=on`: PostgreSQL writes at most 8 kB per
/// `SSL_write`, so its TLS records never hold more than 8 kB, which libpq always takes whole.
/// stunnel encrypts whatever it has read from the server at once, up to TLS's 16 kB per record:
/// what other TLS terminators, poolers and servers speaking PostgreSQL's protocol send too. With
/// such records libpq can leave decrypted bytes inside OpenSSL after a read, bytes the socket no
/// longer shows as readable.
public final class PostgresTLSProxy: Sendable {
    public static let executable = URL(fileURLWithPath: "/usr/bin/stunnel4")

    /// Whether a test can run one: always under `REQUIRE_INTEGRATION=1` (a missing stunnel4 then
    /// fails the test), otherwise when `stunnel4` and `openssl` are installed. For
    /// `@Suite(.enabled(if: …))`.
    public static let isAvailable: Bool =
        IntegrationEnvironment.isRequired
        || (FileManager.default.isExecutableFile(atPath: executable.path)
            && FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"))

    /// Where clients connect (127.0.0.1).
    public let port: Int
    public let certificate: SelfSignedCertificate
    private let process: ChildProcess
    private let directory: URL

    /// Starts stunnel on a free loopback port, passing connections on to `127.0.0.1:targetPort`,
    /// with a certificate of its own, and returns once it accepts connections.
    public static func start(targetPort: Int) async throws -> PostgresTLSProxy {
        let directory = try makeTemporaryDirectory("pg-tls-proxy")
        let certificate = try await SelfSignedCertificate.make(in: directory)
        let port = try LowPorts.free()
        let configuration = directory.appendingPathComponent("stunnel.conf")
        // Foreground, so that the child process is stunnel itself (stopped with a signal); no pid
        // file; the log goes to standard error, that is to the child's log file.
        try """
        foreground = yes
        syslog = no
        pid =
        [postgres]
        client = no
        protocol = pgsql
        accept = 127.0.0.1:\(port)
        connect = 127.0.0.1:\(targetPort)
        cert = \(certificate.certificate.path)
        key = \(certificate.key.path)

        """.write(to: configuration, atomically: true, encoding: .utf8)
        let process = try ChildProcess(
            name: "stunnel", executable: executable, arguments: [configuration.path],
            log: directory.appendingPathComponent("stunnel.log"))
        let proxy = PostgresTLSProxy(port: port, certificate: certificate, process: process, directory: directory)
        let deadline = ContinuousClock.now + .seconds(30)
        while !loopbackAccepts(port: port) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                let output = process.output
                await proxy.stop()
                throw TestSetupError("stunnel did not listen on \(port):\n\(output)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return proxy
    }

    private init(port: Int, certificate: SelfSignedCertificate, process: ChildProcess, directory: URL) {
        self.port = port
        self.certificate = certificate
        self.process = process
        self.directory = directory
    }

    /// What stunnel logged (one "accepted connection" line per client connection).
    public var log: String { process.output }

    public func stop() async {
        await process.stop(signal: SIGTERM, timeout: .seconds(10))
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A PostgreSQL server of a test's own with TLS on (`ssl=on`, a self-signed certificate made
/// for it), and a ``PostgresTLSProxy`` in front of it: two ways to reach one database over TLS,
/// the server's own (records of at most 8 kB) and stunnel's (records of up to 16 kB).
public final class TLSPostgres: Sendable {
    public let database = "leasehold"
    public let stack: LocalStack
    public let proxy: PostgresTLSProxy
    private let directory: URL

    public static func start() async throws -> TLSPostgres {
        let directory = try makeTemporaryDirectory("pg-tls")
        let certificate = try await SelfSignedCertificate.make(in: directory)
        let stack = try LocalStack(
            options: LocalStackOptions(
                directory: directory.appendingPathComponent("server"),
                postgresSettings: [
                    "ssl": "on", "ssl_cert_file": certificate.certificate.path,
                    "ssl_key_file": certificate.key.path, "fsync": "off", "max_connections": "50",
                ]))
        do {
            try await stack.startPostgres()
        } catch {
            await stack.stopPostgres()
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        let proxy: PostgresTLSProxy
        do {
            proxy = try await PostgresTLSProxy.start(targetPort: stack.postgresPort)
        } catch {
            await stack.stopPostgres()
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        return TLSPostgres(stack: stack, proxy: proxy, directory: directory)
    }

    private init(stack: LocalStack, proxy: PostgresTLSProxy, directory: URL) {
        self.stack = stack
        self.proxy = proxy
        self.directory = directory
    }

    /// The server itself, `sslmode` as given (`require`: TLS by PostgreSQL, or no connection).
    public func serverURL(sslmode: String = "require") -> String {
        "postgres://postgres@127.0.0.1:\(stack.postgresPort)/\(database)?sslmode=\(sslmode)"
    }

    /// Through stunnel: TLS with `sslmode=require`, ended by the proxy.
    public var proxyURL: String {
        "postgres://postgres@127.0.0.1:\(proxy.port)/\(database)?sslmode=require"
    }

    public func configuration(_ url: String) -> PostgresConfiguration {
        PostgresConfiguration(connectionString: url, connectTimeoutSeconds: 5, applicationName: "leasehold-tests")
    }

    /// The server's log, for a failing test's message.
    public var serverLog: String { (try? String(contentsOf: stack.postgresLog, encoding: .utf8)) ?? "" }

    public func stop() async {
        await proxy.stop()
        await stack.stopPostgres()
        try? FileManager.default.removeItem(at: directory)
    }
}
