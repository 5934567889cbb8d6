import Foundation
import LeaseholdCore

/// How a notifier runs. Every field but the token has a default; `leasehold notifier` fills them
/// from flags and the environment.
public struct NotifierConfiguration: Sendable {
    /// The bot's token (`TELEGRAM_BOT_TOKEN`); never printed.
    public var token: BotToken
    /// `TELEGRAM_API_BASE_URL`: `https://api.telegram.org`, a local Bot API server, or a test fake.
    public var apiBaseURL: String
    /// This notifier's name, recorded in `outbox.claimed_by` as `<name>#<claim number>`.
    public var name: String
    /// Messages per second for the whole bot, across every notifier (`LEASEHOLD_NOTIFIER_RATE`).
    /// Telegram's documented limit is about 30; it answers 429 above it.
    public var globalRate: Int
    /// At most one message per this interval to one private chat (`LEASEHOLD_NOTIFIER_CHAT_INTERVAL_MS`;
    /// Telegram: about 1 per second).
    public var chatInterval: Duration
    /// The same for groups and channels (negative chat ids; `LEASEHOLD_NOTIFIER_GROUP_CHAT_INTERVAL_MS`;
    /// Telegram: about 20 per minute).
    public var groupChatInterval: Duration
    /// Bot API calls in flight at once in this process (`LEASEHOLD_NOTIFIER_CONCURRENCY`).
    public var concurrency: Int
    /// How often an idle notifier looks for new rows (`LEASEHOLD_NOTIFIER_POLL_INTERVAL_MS`): the
    /// added latency of a reply, at most.
    public var pollInterval: Duration
    /// One Bot API call, connect to answer (`LEASEHOLD_NOTIFIER_REQUEST_TIMEOUT_MS`).
    public var requestTimeout: Duration
    /// A row `sending` for longer than this belongs to a notifier that died: it goes back to
    /// `pending` and is sent again (`LEASEHOLD_NOTIFIER_CLAIM_TIMEOUT_MS`). Must exceed the request
    /// timeout by a margin, so a live notifier's call is never taken from it.
    public var claimTimeout: Duration
    /// SIGTERM: calls in flight get this long to finish and be recorded (`LEASEHOLD_DRAIN_TIMEOUT_MS`).
    public var drainTimeout: Duration
    /// Backoff and attempts for 5xx and network failures (`LEASEHOLD_NOTIFIER_RETRY_BASE_MS`,
    /// `LEASEHOLD_NOTIFIER_RETRY_MAX_DELAY_MS`, `LEASEHOLD_NOTIFIER_MAX_ATTEMPTS`). 429s do not count.
    public var retryPolicy: RetryPolicy
    /// After Telegram rejected the token (401/404), wait this long before trying again.
    public var misconfiguredPause: Duration
    /// How often the outbox gauges (backlog, oldest pending age, …) are refreshed.
    public var gaugeInterval: Duration

    public init(
        token: BotToken, apiBaseURL: String = NotifierConfiguration.defaultAPIBaseURL,
        name: String = NotifierConfiguration.defaultName(), globalRate: Int = NotifierConfiguration.defaultGlobalRate,
        chatInterval: Duration = NotifierConfiguration.defaultChatInterval,
        groupChatInterval: Duration = NotifierConfiguration.defaultGroupChatInterval,
        concurrency: Int = NotifierConfiguration.defaultConcurrency,
        pollInterval: Duration = NotifierConfiguration.defaultPollInterval,
        requestTimeout: Duration = NotifierConfiguration.defaultRequestTimeout,
        claimTimeout: Duration = NotifierConfiguration.defaultClaimTimeout,
        drainTimeout: Duration = NotifierConfiguration.defaultDrainTimeout,
        retryPolicy: RetryPolicy = RetryPolicy(defaults: NotifierConfiguration.defaultRetry),
        misconfiguredPause: Duration = .seconds(30), gaugeInterval: Duration = .seconds(2)
    ) {
        self.token = token
        self.apiBaseURL = apiBaseURL
        self.name = name
        self.globalRate = globalRate
        self.chatInterval = chatInterval
        self.groupChatInterval = groupChatInterval
        self.concurrency = concurrency
        self.pollInterval = pollInterval
        self.requestTimeout = requestTimeout
        self.claimTimeout = claimTimeout
        self.drainTimeout = drainTimeout
        self.retryPolicy = retryPolicy
        self.misconfiguredPause = misconfiguredPause
        self.gaugeInterval = gaugeInterval
    }

    // The defaults of the settings `leasehold notifier` reads (its `--help` shows these).

    /// ``apiBaseURL``'s default: Telegram's Bot API.
    public static let defaultAPIBaseURL = "https://api.telegram.org"
    /// ``globalRate``'s default: Telegram's documented limit.
    public static let defaultGlobalRate = 30
    /// ``chatInterval``'s default.
    public static let defaultChatInterval: Duration = .seconds(1)
    /// ``groupChatInterval``'s default.
    public static let defaultGroupChatInterval: Duration = .seconds(3)
    /// ``concurrency``'s default.
    public static let defaultConcurrency = 30
    /// ``pollInterval``'s default.
    public static let defaultPollInterval: Duration = .milliseconds(200)
    /// ``requestTimeout``'s default.
    public static let defaultRequestTimeout: Duration = .seconds(10)
    /// ``claimTimeout``'s default.
    public static let defaultClaimTimeout: Duration = .seconds(60)
    /// ``drainTimeout``'s default.
    public static let defaultDrainTimeout: Duration = .seconds(20)
    /// ``retryPolicy``'s default backoff and attempts.
    public static let defaultRetry = RetryPolicy.Parameters(base: .seconds(1), maxDelay: .seconds(300), maxAttempts: 15)

    /// `notifier-<hostname>-<pid>-<random>`.
    public static func defaultName() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        return "notifier-\(host)-\(getpid())-\(UUID().uuidString.prefix(6).lowercased())"
    }

    /// Why a configuration cannot work, in a sentence naming the setting; `nil` when it can.
    public var problem: String? {
        if claimTimeout < requestTimeout * 2 {
            return "LEASEHOLD_NOTIFIER_CLAIM_TIMEOUT_MS (\(claimTimeout)) must be at least twice "
                + "LEASEHOLD_NOTIFIER_REQUEST_TIMEOUT_MS (\(requestTimeout)): a live notifier's call must never be "
                + "taken for a dead one's"
        }
        guard let url = URL(string: apiBaseURL), let scheme = url.scheme?.lowercased(),
            scheme == "https" || scheme == "http", url.host?.isEmpty == false, url.query == nil, url.user == nil
        else {
            return "TELEGRAM_API_BASE_URL must be an http(s) URL such as https://api.telegram.org, "
                + "without credentials or query; got \(apiBaseURL)"
        }
        return nil
    }

    /// The interval for `chatID` (groups and channels have negative ids).
    public func interval(forChat chatID: Int64) -> Duration {
        chatID < 0 ? groupChatInterval : chatInterval
    }
}
