import Foundation
import HTTPTypes
import Hummingbird
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import Logging

/// The ops console's HTTP application (`leasehold console`): server-rendered pages at stable paths,
/// every page but `/login` and the health checks behind a login.
///
/// | Path | Page |
/// | --- | --- |
/// | `/` | overview: streams, consumers, retries, dead letters by kind and error, leader, outbox, chart |
/// | `/dead-letters` | the list, filtered like `leasehold dlq list` (`kind`, `stream`, `since`, `error`, `status`), paged (`page`) |
/// | `/dead-letters/<id>` | one letter: payload pretty and raw (redacted), every attempt's error, webhook_log rows of a payment |
/// | `/payments/<id>`, `/payments?user=<id>` | what `leasehold payments show` prints; a user's payments |
/// | `/messages/<key>` | a message by inbox key (`api:<request_id>`, `tg:<update_id>`, `yk:…`) |
/// | `/login` | the login form |
///
/// Replay and purge are `POST /dead-letters/replay` and `POST /dead-letters/purge`, pausing and
/// resuming a stream `POST /streams/pause` and `POST /streams/resume` (from the overview): the
/// first post shows what would change (a dry run), the second (`confirm=yes`) does it and records
/// who and when (and, for a pause, why) in `console_actions`. `POST /dead-letters/<id>/reveal` shows
/// one letter's payload unredacted, once, and is recorded there too. Every form carries a CSRF token; a post without a session or with a
/// wrong token gets 403, as does any action in read-only mode.
public struct ConsoleApplication: Sendable {
    public let configuration: ConsoleConfiguration
    let redis: RedisClient
    let postgres: PostgresClient
    let logger: Logger
    let pages: ConsolePages

    public init(
        configuration: ConsoleConfiguration, redis: RedisClient, postgres: PostgresClient, logger: Logger
    )
        throws
    {
        self.configuration = configuration
        self.redis = redis
        self.postgres = postgres
        self.logger = logger
        self.pages = ConsolePages(
            configuration: configuration, signer: ConsoleSigner(token: configuration.token),
            renderer: try ConsoleRenderer(), logger: logger)
    }

    /// The Hummingbird application serving the console on the configured address.
    public func application(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol
    {
        Application(
            router: router(),
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port), serverName: "leasehold-console"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// The health checks, then each controller's routes.
    func router() -> Router<BasicRequestContext> {
        let router = Router()
        let (redis, postgres) = (self.redis, self.postgres)
        router.get("healthz") { _, _ in "ok\n" }
        router.get("readyz") { _, _ -> String in
            guard (try? await redis.send("PING")) != nil,
                (try? await postgres.query("SELECT 1")) != nil
            else { throw HTTPError(.serviceUnavailable, message: "PostgreSQL or Redis does not answer") }
            return "ready\n"
        }
        SessionController(pages: pages).register(with: router)
        OverviewController(pages: pages, redis: redis, postgres: postgres).register(with: router)
        DeadLettersController(pages: pages, redis: redis, postgres: postgres).register(with: router)
        LookupController(pages: pages, postgres: postgres).register(with: router)
        StreamsController(pages: pages, redis: redis, postgres: postgres).register(with: router)
        return router
    }
}
