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
            (\(Settings.Console.secureCookies.environmentNote)). \
            Pages: / (overview), /dead-letters (filters kind, stream, since, error, status; paging), \
            /dead-letters/<id>, /payments/<id>, /payments?user=<id>, /messages/<key> (api:<request_id>, \
            tg:<update_id>, yk:<event>:<payment id>), /login; GET /healthz and /readyz need no login. \
            Replay and purge show a dry-run count first and are recorded (who, when) in console_actions; \
            every form carries a CSRF token; --read-only turns the actions off. \
            A dead letter's payload is shown redacted (--redact-fields); a dead letter's \
            page has a Reveal button that shows its payload as it is, once, and records who, when and why in \
            console_actions (off in --read-only).
            """)

    @OptionGroup var common: CommonOptions

    @Option(help: Settings.Console.host.help)
    var host: String?

    @Option(help: Settings.Console.port.help)
    var port: Int?

    @Flag(help: Settings.Console.readOnly.help)
    var readOnly = false

    @Option(help: Settings.Console.sessionLifetime.help)
    var sessionHours: Int?

    @Option(help: Settings.Redaction.fields.help)
    var redactFields: String?

    func run() async throws {
        let logger = try common.bootstrapLogging(label: "leasehold.console")
        guard let token = Settings.environment["LEASEHOLD_CONSOLE_TOKEN"], !token.isEmpty else {
            throw ValidationError(
                "the console is off: set LEASEHOLD_CONSOLE_TOKEN (the secret operators log in with) to turn it on")
        }
        let configuration = ConsoleConfiguration(
            host: Settings.Console.host.resolve(host),
            port: try Settings.Console.port.resolve(port),
            token: token,
            readOnly: try Settings.Console.readOnly.resolve(readOnly ? true : nil),
            keys: common.redisKeys,
            sessionLifetime: try Settings.Console.sessionLifetime.resolve(sessionHours),
            secureCookies: try Settings.Console.secureCookies.resolve(nil),
            redactor: try Settings.Redaction.fields.resolve(redactFields))
        let redis = RedisClient(configuration: try common.redisConfiguration(), size: 4)
        let postgres = PostgresClient(configuration: common.postgresConfiguration(role: "console"), size: 4)
        let console = try ConsoleApplication(
            configuration: configuration, redis: redis, postgres: postgres, logger: logger)
        logger.info(
            "console listening",
            metadata: [
                "host": "\(configuration.host)", "port": "\(configuration.port)",
                "read_only": "\(configuration.readOnly)",
                "redacted_fields": "\(configuration.redactor.fields.count)",
            ])
        try await runServiceGroup([redis, postgres, console.application()], logger: logger)
    }
}
