import LeaseholdCore
import Metrics

/// The notifier's metrics (swift-metrics; Prometheus text on `/metrics`).
///
/// | Metric | Type | Meaning |
/// | --- | --- | --- |
/// | `leasehold_notifier_sent_total{method}` | counter | replies Telegram accepted |
/// | `leasehold_notifier_failed_total{reason}` | counter | rows failed for good: `rejected` (400/403/…), `gave_up` (attempts used up), `invalid` (unsupported method, payload not an object) |
/// | `leasehold_notifier_retried_total{reason}` | counter | attempts that will be retried: `server_error` (5xx), `network` (timeout, refused, reset) |
/// | `leasehold_notifier_rate_limited_total` | counter | 429 answers (each pauses the whole bot for `retry_after`) |
/// | `leasehold_notifier_token_rejected_total` | counter | 401/404 answers: the token or base URL is wrong |
/// | `leasehold_notifier_reclaimed_total` | counter | stale claims of a dead notifier taken back (possible double sends) |
/// | `leasehold_notifier_lost_claims_total` | counter | results not recorded because the row had been taken back |
/// | `leasehold_notifier_request_duration_seconds` | timer | one Bot API call |
/// | `leasehold_notifier_in_flight` | gauge | calls in flight in this process |
/// | `leasehold_outbox_pending` | gauge | the backlog: rows waiting (due or backing off) |
/// | `leasehold_outbox_due` | gauge | pending rows due now |
/// | `leasehold_outbox_sending` | gauge | rows claimed, call in flight (any notifier) |
/// | `leasehold_outbox_failed` | gauge | rows failed for good |
/// | `leasehold_outbox_oldest_pending_age_seconds` | gauge | how long the oldest waiting reply has waited |
/// | `leasehold_notifier_paused_seconds` | gauge | seconds left of the bot's 429 pause |
public struct NotifierMetrics: Sendable {
    public static let sent = "leasehold_notifier_sent_total"
    public static let failed = "leasehold_notifier_failed_total"
    public static let retried = "leasehold_notifier_retried_total"
    public static let rateLimited = "leasehold_notifier_rate_limited_total"
    public static let tokenRejected = "leasehold_notifier_token_rejected_total"
    public static let reclaimed = "leasehold_notifier_reclaimed_total"
    public static let lostClaims = "leasehold_notifier_lost_claims_total"

    private let rateLimitedCounter: Counter
    private let tokenRejectedCounter: Counter
    private let reclaimedCounter: Counter
    private let lostClaimsCounter: Counter
    private let requestTimer: Timer
    private let inFlightGauge: Gauge
    private let pendingGauge: Gauge
    private let dueGauge: Gauge
    private let sendingGauge: Gauge
    private let failedGauge: Gauge
    private let oldestGauge: Gauge
    private let pausedGauge: Gauge

    /// Creates every metric up front, so `/metrics` shows them (at 0) before the first event.
    public init() {
        rateLimitedCounter = Counter(label: Self.rateLimited)
        tokenRejectedCounter = Counter(label: Self.tokenRejected)
        reclaimedCounter = Counter(label: Self.reclaimed)
        lostClaimsCounter = Counter(label: Self.lostClaims)
        requestTimer = Timer(label: "leasehold_notifier_request_duration_seconds", preferredDisplayUnit: .seconds)
        inFlightGauge = Gauge(label: "leasehold_notifier_in_flight")
        pendingGauge = Gauge(label: "leasehold_outbox_pending")
        dueGauge = Gauge(label: "leasehold_outbox_due")
        sendingGauge = Gauge(label: "leasehold_outbox_sending")
        failedGauge = Gauge(label: "leasehold_outbox_failed")
        oldestGauge = Gauge(label: "leasehold_outbox_oldest_pending_age_seconds")
        pausedGauge = Gauge(label: "leasehold_notifier_paused_seconds")
        for method in BotAPIClient.supportedMethods.sorted() {
            _ = Counter(label: Self.sent, dimensions: [("method", method)])
        }
        for reason in ["rejected", "gave_up", "invalid"] {
            _ = Counter(label: Self.failed, dimensions: [("reason", reason)])
        }
        for reason in ["server_error", "network"] {
            _ = Counter(label: Self.retried, dimensions: [("reason", reason)])
        }
    }

    /// Counts one recorded completion of a call to `method`.
    public func count(_ completion: OutboxCompletion, method: String, outcome: BotAPIOutcome?) {
        switch completion {
        case .sent:
            Counter(label: Self.sent, dimensions: [("method", method)]).increment()
        case .failed:
            let reason: String
            switch outcome {
            case .rejected: reason = "rejected"
            case .retryable: reason = "gave_up"
            default: reason = "invalid"
            }
            Counter(label: Self.failed, dimensions: [("reason", reason)]).increment()
        case .retry:
            let network: Bool
            if case .retryable(let code, _) = outcome { network = code == nil } else { network = true }
            Counter(label: Self.retried, dimensions: [("reason", network ? "network" : "server_error")]).increment()
        case .rateLimited:
            rateLimitedCounter.increment()
        case .handBack:
            if case .botMisconfigured = outcome { tokenRejectedCounter.increment() }
        }
    }

    public func reclaimed(_ count: Int) {
        if count > 0 { reclaimedCounter.increment(by: count) }
    }

    public func lostClaim() {
        lostClaimsCounter.increment()
    }

    public func requestTook(_ duration: Duration) {
        requestTimer.recordNanoseconds(duration.saturatingNanoseconds)
    }

    public func inFlight(_ count: Int) {
        inFlightGauge.record(count)
    }

    public func record(_ backlog: OutboxStore.Backlog) {
        pendingGauge.record(backlog.pending)
        dueGauge.record(backlog.due)
        sendingGauge.record(backlog.sending)
        failedGauge.record(backlog.failed)
        oldestGauge.record(backlog.oldestPendingAge)
        pausedGauge.record(backlog.pausedFor)
    }
}
