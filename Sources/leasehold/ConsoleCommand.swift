import ArgumentParser
import Foundation
import LeaseholdConsole
import LeaseholdPostgres
import LeaseholdRedis
import ServiceLifecycle

/// `leasehold console`: the ops console, a web page over PostgreSQL and Redis.
struct ConsoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Serve the ops console: streams, dead letters (replay, purge), payments and messages, in a browser.",
        discussion: """
            Stateless: reads PostgreSQL and Redis, run as many as you like. Off unless the token is set \
            (env: LEASEHOLD_CONSOLE_TOKEN; environment only): operators log in with their name and that token, \
            which sets an HttpOnly, SameSite=Strict session cookie; true adds Secure, for HTTPS \
            (env: LEASEHOLD_CONSOLE_SECURE_COOKIES; default false). \
            Pages: / (overview), /dead-letters (filters kind, stream, since, error, status; paging), \
            /dead-letters/<id>, /payments/<id>, /payments?user=<id>, /messages/<key> (api:<request_id>, \
            tg:<update_id>, yk:<event>:<payment id>), /login; GET /healthz and /readyz need no login. \
            Replay and purge show a dry-run count first and are recorded (who, when) in console_actions; \
            every form carries a CSRF token; --read-only turns the actions off.
            """)

    @OptionGroup var common: CommonOptions

    @Option(help: "Listen address (env: LEASEHOLD_CONSOLE_HOST; default 0.0.0.0).")
    var host: String?

    @Option(help: "Listen port (env: LEASEHOLD_CONSOLE_PORT; default 8090).")
    var port: Int?

    @Flag(help: "Show everything, change nothing: no replay, no purge (env: LEASEHOLD_CONSOLE_READ_ONLY).")
    var readOnly = false

    @Option(help: "Hours a login lasts (env: LEASEHOLD_CONSOLE_SESSION_HOURS; default 12).")
    var sessionHours: Int?

    func run() async throws {
        let logger = try common.bootstrapLogging(label: "leasehold.console")
        guard let token = Setting.environment["LEASEHOLD_CONSOLE_TOKEN"], !token.isEmpty else {
            throw ValidationError(
                "the console is off: set LEASEHOLD_CONSOLE_TOKEN (the secret operators log in with) to turn it on")
        }
        let configuration = ConsoleConfiguration(
            host: Setting.string(host, "LEASEHOLD_CONSOLE_HOST", default: "0.0.0.0"),
            port: try Setting.int(port, "LEASEHOLD_CONSOLE_PORT", default: 8090, range: 0...65535),
            token: token,
            readOnly: try Setting.bool(readOnly ? true : nil, "LEASEHOLD_CONSOLE_READ_ONLY", default: false),
            keys: common.redisKeys,
            sessionLifetime: .seconds(
                3600 * (try Setting.int(sessionHours, "LEASEHOLD_CONSOLE_SESSION_HOURS", default: 12, range: 1...720))),
            secureCookies: try Setting.bool(nil, "LEASEHOLD_CONSOLE_SECURE_COOKIES", default: false))
        let redis = RedisClient(configuration: try common.redisConfiguration(), size: 4)
        let postgres = PostgresClient(configuration: common.postgresConfiguration(role: "console"), size: 4)
        let console = try ConsoleApplication(
            configuration: configuration, redis: redis, postgres: postgres, logger: logger)
        logger.info(
            "console listening",
            metadata: [
                "host": "\(configuration.host)", "port": "\(configuration.port)",
                "read_only": "\(configuration.readOnly)",
            ])
        try await runServices([console.application()], logger: logger) {
            redis.close()
            await postgres.close()
        }
    }
}
