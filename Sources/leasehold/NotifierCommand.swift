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

    @Option(help: "Bot API base URL (env: TELEGRAM_API_BASE_URL; default https://api.telegram.org).")
    var apiBaseURL: String?

    @Option(
        help: "Name recorded in outbox.claimed_by (env: LEASEHOLD_NOTIFIER_NAME; default notifier-host-pid-random).")
    var name: String?

    @Option(
        help:
            "Messages per second for the whole bot, all notifiers together (env: LEASEHOLD_NOTIFIER_RATE; default 30).")
    var rate: Int?

    @Option(
        help:
            "At most one message per private chat per this many ms (env: LEASEHOLD_NOTIFIER_CHAT_INTERVAL_MS; default 1000)."
    )
    var chatIntervalMs: Int?

    @Option(help: "The same for groups and channels (env: LEASEHOLD_NOTIFIER_GROUP_CHAT_INTERVAL_MS; default 3000).")
    var groupChatIntervalMs: Int?

    @Option(help: "Bot API calls in flight at once in this process (env: LEASEHOLD_NOTIFIER_CONCURRENCY; default 30).")
    var concurrency: Int?

    @Option(
        help:
            "How often an idle notifier looks for new rows, in ms (env: LEASEHOLD_NOTIFIER_POLL_INTERVAL_MS; default 200)."
    )
    var pollIntervalMs: Int?

    @Option(help: "Timeout of one Bot API call in ms (env: LEASEHOLD_NOTIFIER_REQUEST_TIMEOUT_MS; default 10000).")
    var requestTimeoutMs: Int?

    @Option(
        help:
            "A row sending for longer than this many ms belongs to a dead notifier and is sent again; at least twice the request timeout (env: LEASEHOLD_NOTIFIER_CLAIM_TIMEOUT_MS; default 60000)."
    )
    var claimTimeoutMs: Int?

    @Option(
        help:
            "Attempts for 5xx and network failures before a row fails (env: LEASEHOLD_NOTIFIER_MAX_ATTEMPTS; default 15)."
    )
    var maxAttempts: Int?

    @Option(
        help:
            "First retry delay in ms, doubled per attempt with jitter (env: LEASEHOLD_NOTIFIER_RETRY_BASE_MS; default 1000)."
    )
    var retryBaseMs: Int?

    @Option(help: "Longest retry delay in ms (env: LEASEHOLD_NOTIFIER_RETRY_MAX_DELAY_MS; default 300000).")
    var retryMaxDelayMs: Int?

    @Option(help: "SIGTERM drain timeout in ms (env: LEASEHOLD_DRAIN_TIMEOUT_MS; default 20000).")
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
            apiBaseURL: Setting.string(apiBaseURL, "TELEGRAM_API_BASE_URL", default: "https://api.telegram.org"),
            name: Setting.string(name, "LEASEHOLD_NOTIFIER_NAME", default: NotifierConfiguration.defaultName()),
            globalRate: try Setting.int(rate, "LEASEHOLD_NOTIFIER_RATE", default: 30, range: 1...10_000),
            chatInterval: try Setting.milliseconds(
                chatIntervalMs, "LEASEHOLD_NOTIFIER_CHAT_INTERVAL_MS", default: 1_000, range: 0...3_600_000),
            groupChatInterval: try Setting.milliseconds(
                groupChatIntervalMs, "LEASEHOLD_NOTIFIER_GROUP_CHAT_INTERVAL_MS", default: 3_000, range: 0...3_600_000),
            concurrency: try Setting.int(concurrency, "LEASEHOLD_NOTIFIER_CONCURRENCY", default: 30, range: 1...1_000),
            pollInterval: try Setting.milliseconds(
                pollIntervalMs, "LEASEHOLD_NOTIFIER_POLL_INTERVAL_MS", default: 200, range: 10...60_000),
            requestTimeout: try Setting.milliseconds(
                requestTimeoutMs, "LEASEHOLD_NOTIFIER_REQUEST_TIMEOUT_MS", default: 10_000, range: 100...600_000),
            claimTimeout: try Setting.milliseconds(
                claimTimeoutMs, "LEASEHOLD_NOTIFIER_CLAIM_TIMEOUT_MS", default: 60_000, range: 200...86_400_000),
            drainTimeout: try Setting.milliseconds(
                drainTimeoutMs, "LEASEHOLD_DRAIN_TIMEOUT_MS", default: 20_000, range: 0...3_600_000),
            retryPolicy: RetryPolicy(
                defaults: .init(
                    base: try Setting.milliseconds(
                        retryBaseMs, "LEASEHOLD_NOTIFIER_RETRY_BASE_MS", default: 1_000, range: 1...86_400_000),
                    maxDelay: try Setting.milliseconds(
                        retryMaxDelayMs, "LEASEHOLD_NOTIFIER_RETRY_MAX_DELAY_MS", default: 300_000,
                        range: 1...86_400_000),
                    maxAttempts: try Setting.int(
                        maxAttempts, "LEASEHOLD_NOTIFIER_MAX_ATTEMPTS", default: 15, range: 1...1_000))))
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
        var services: [any Service] = [notifier]
        if let endpoint = try common.metricsEndpoint(
            registry: registry, role: "notifier", logger: logger,
            ready: {
                (try? await postgres.query("SELECT 1")) != nil && !notifier.tokenRejected
            })
        {
            services.append(endpoint)
        }
        try await runServices(services, logger: logger) {
            await client.shutdown()
            await postgres.close()
        }
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
