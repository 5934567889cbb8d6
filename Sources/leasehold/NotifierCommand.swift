import ArgumentParser
import Foundation
import LeaseholdCore
import LeaseholdNotifier
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRuntime
import Metrics
import Prometheus
import ServiceLifecycle

/// `leasehold notifier`: delivers the outbox (bot replies) to the Telegram Bot API.
struct NotifierCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notifier",
        abstract: "Send the outbox's bot replies to the Telegram Bot API, at Telegram's rate limits, once each.",
        discussion: """
            Claims pending outbox rows (SELECT … FOR UPDATE SKIP LOCKED, in a short transaction committed before \
            the call), calls the Bot API (sendMessage, editMessageText, answerCallbackQuery, …) and records each \
            row sent with Telegram's message_id, failed with Telegram's reason (400, 403 and other 4xx: never \
            retried), or pending again with a backoff (5xx, network errors). A 429 pauses every notifier for \
            parameters.retry_after seconds. Limits hold across all notifiers of the bot: LEASEHOLD_NOTIFIER_RATE \
            messages per second in all, one message per chat per LEASEHOLD_NOTIFIER_CHAT_INTERVAL_MS, a chat's \
            replies in order. Run one or two per bot (more add availability, not speed). The token comes from the \
            environment only, never from a flag, and is never logged (env: TELEGRAM_BOT_TOKEN, or a file holding \
            it: TELEGRAM_BOT_TOKEN_FILE). /metrics, /healthz and /readyz are served when a port is set (env: \
            LEASEHOLD_METRICS_PORT, LEASEHOLD_METRICS_HOST). SIGTERM or SIGINT: stop claiming, let calls in flight \
            finish and be recorded within the drain timeout, exit 0.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(help: Settings.Notifier.apiBaseURL.help)
    var apiBaseURL: String?

    @Option(help: Settings.Notifier.name.help)
    var name: String?

    @Option(help: Settings.Notifier.rate.help)
    var rate: Int?

    @Option(help: Settings.Notifier.chatInterval.help)
    var chatIntervalMs: Int?

    @Option(help: Settings.Notifier.groupChatInterval.help)
    var groupChatIntervalMs: Int?

    @Option(help: Settings.Notifier.concurrency.help)
    var concurrency: Int?

    @Option(help: Settings.Notifier.pollInterval.help)
    var pollIntervalMs: Int?

    @Option(help: Settings.Notifier.requestTimeout.help)
    var requestTimeoutMs: Int?

    @Option(help: Settings.Notifier.claimTimeout.help)
    var claimTimeoutMs: Int?

    @Option(help: Settings.Notifier.maxAttempts.help)
    var maxAttempts: Int?

    @Option(help: Settings.Notifier.retryBase.help)
    var retryBaseMs: Int?

    @Option(help: Settings.Notifier.retryMaxDelay.help)
    var retryMaxDelayMs: Int?

    @Option(help: Settings.Notifier.drainTimeout.help)
    var drainTimeoutMs: Int?

    @Flag(
        help:
            "Call the Bot API's getMe with the configured token and base URL, print the bot's name or Telegram's error, and exit (the token is not shown)."
    )
    var check = false

    func run() async throws {
        let token = try Self.readToken()
        let logger = try common.bootstrapLogging(label: "leasehold.notifier")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        LogOutput.standardError.countDropsInMetrics()
        let configuration = NotifierConfiguration(
            token: token,
            apiBaseURL: Settings.Notifier.apiBaseURL.resolve(apiBaseURL),
            name: Settings.Notifier.name.resolve(name),
            globalRate: try Settings.Notifier.rate.resolve(rate),
            chatInterval: try Settings.Notifier.chatInterval.resolve(chatIntervalMs),
            groupChatInterval: try Settings.Notifier.groupChatInterval.resolve(groupChatIntervalMs),
            concurrency: try Settings.Notifier.concurrency.resolve(concurrency),
            pollInterval: try Settings.Notifier.pollInterval.resolve(pollIntervalMs),
            requestTimeout: try Settings.Notifier.requestTimeout.resolve(requestTimeoutMs),
            claimTimeout: try Settings.Notifier.claimTimeout.resolve(claimTimeoutMs),
            drainTimeout: try Settings.Notifier.drainTimeout.resolve(drainTimeoutMs),
            retryPolicy: RetryPolicy(
                defaults: .init(
                    base: try Settings.Notifier.retryBase.resolve(retryBaseMs),
                    maxDelay: try Settings.Notifier.retryMaxDelay.resolve(retryMaxDelayMs),
                    maxAttempts: try Settings.Notifier.maxAttempts.resolve(maxAttempts))))
        if let problem = configuration.problem { throw ValidationError(problem) }
        if check {
            try await Self.check(configuration)
            return
        }

        let postgres = PostgresClient(configuration: common.postgresConfiguration(role: "notifier"), size: 4)
        let client = BotAPIClient(
            baseURL: configuration.apiBaseURL, token: token, requestTimeout: configuration.requestTimeout,
            maxConnections: configuration.concurrency)
        let notifier = NotifierService(
            configuration: configuration, postgres: postgres, client: client, logger: logger)
        var services: [any Service] = [postgres, client, notifier]
        if let endpoint = try common.metricsEndpoint(
            registry: registry, role: "notifier", logger: logger,
            dependencies: [.postgres(postgres)],
            ready: {
                (try? await postgres.query("SELECT 1")) != nil && !notifier.tokenRejected
            })
        {
            services.append(endpoint)
        }
        try await runServiceGroup(services, logger: logger)
    }

    /// `--check`: getMe, printed.
    static func check(_ configuration: NotifierConfiguration) async throws {
        let client = BotAPIClient(
            baseURL: configuration.apiBaseURL, token: configuration.token,
            requestTimeout: configuration.requestTimeout, maxConnections: 1)
        let (bot, outcome) = await client.getMe()
        await client.shutdown()
        guard let bot else {
            print("not ok: \(configuration.apiBaseURL) answered \(outcome.summary)")
            throw ExitCode(1)
        }
        print("ok: \(configuration.apiBaseURL) answers; the token belongs to \(bot)")
    }

    /// The token from `TELEGRAM_BOT_TOKEN`, else from the file `TELEGRAM_BOT_TOKEN_FILE` names (a
    /// Compose or Kubernetes secret). Errors never contain the token.
    static func readToken() throws -> BotToken {
        let environment = ProcessInfo.processInfo.environment
        let text: String
        let source: String
        if let value = environment["TELEGRAM_BOT_TOKEN"], !value.isEmpty {
            (text, source) = (value, "TELEGRAM_BOT_TOKEN")
        } else if let path = environment["TELEGRAM_BOT_TOKEN_FILE"], !path.isEmpty {
            guard let data = FileManager.default.contents(atPath: path), let value = String(data: data, encoding: .utf8)
            else { throw ValidationError("TELEGRAM_BOT_TOKEN_FILE=\(path) cannot be read") }
            (text, source) = (value, "TELEGRAM_BOT_TOKEN_FILE (\(path))")
        } else {
            throw ValidationError(
                "TELEGRAM_BOT_TOKEN is not set (nor TELEGRAM_BOT_TOKEN_FILE): the notifier needs the bot's token")
        }
        do {
            return try BotToken(text)
        } catch {
            throw ValidationError("\(source): \(error.description)")
        }
    }
}
