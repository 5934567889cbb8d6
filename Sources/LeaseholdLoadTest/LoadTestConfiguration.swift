import Foundation

/// What `leasehold loadtest` drives. Every field has a default.
///
/// Request `i` (0, 1, 2, …) books slot `(i / requestsPerSlot) % slots` for user `i % users`, so
/// each slot gets `requestsPerSlot` requests in a row (the contention) and, with as many users
/// as requests, every request comes from a different user. With fewer users, a user sends
/// several requests and, when one booking per user is enforced, gets `already_booked` after
/// the first success.
public struct LoadTestConfiguration: Sendable {
    /// Ingress base URLs; requests are spread across them round-robin.
    public var ingressURLs: [String]
    /// What is sent: `POST /v1/bookings` or Telegram `Update`s to `/telegram/webhook`.
    public var input: LoadTestInput
    /// Bearer token for `/v1/bookings` (`--input api`).
    public var apiToken: String
    /// The bot's webhook secret (`--input telegram`).
    public var telegramSecret: String
    /// PostgreSQL of the system under test: seeding, verification, pgbench.
    public var postgresURL: String
    /// Fresh slots created for this run.
    public var slots: Int
    /// Requests aimed at each slot in a row (the contention): one wins, the rest get `slot_taken`.
    public var requestsPerSlot: Int
    /// Fresh users created for this run; `nil`: one per request (`slots × requestsPerSlot`).
    public var users: Int?
    /// How many requests to send; `nil`: `slots × requestsPerSlot`, or unbounded with `duration`.
    public var requestCount: Int?
    /// Send for this long instead of a request count; every request accepted before the
    /// deadline is still waited for and verified.
    public var duration: Duration?
    /// Concurrent clients (closed loop: each sends its next request when the previous was answered).
    public var concurrency: Int
    /// Fixed arrival rate in requests per second instead of a closed loop (still bounded by
    /// `concurrency` requests in flight); HTTP latency then counts from each request's scheduled
    /// time, so a stalled server is not hidden by the client waiting (coordinated omission).
    public var rate: Double?
    /// How long to wait, after sending ended, for every accepted request's outcome.
    public var completionTimeout: Duration
    /// The PostgreSQL server log, for the "no duplicate key errors" invariant; `nil` skips that check.
    public var postgresLog: String?
    /// Also run pgbench with the same booking transaction at the same concurrency and contention.
    public var pgbench: Bool
    /// Keep per-request timings for a latency-over-time plot (about 16 bytes per request).
    public var recordTimeline: Bool
    /// Measure ingress alone: send, count the accepted answers, and remove the run's entries
    /// from the stream (and its result and digest keys) afterwards, without waiting for outcomes
    /// or checking bookings; meant for a system with no worker consuming. Needs ``redisURL``.
    public var ingressOnly: Bool
    /// Redis of the system under test (the `--ingress-only` clean-up); `nil`: not given.
    public var redisURL: String?
    /// The prefix of every Redis key the ingress writes (`LEASEHOLD_REDIS_PREFIX`).
    public var redisPrefix: String
    /// Streams per source when the system runs the sharded key layout (`LEASEHOLD_REDIS_SHARDS`);
    /// `nil` for the one-node layout.
    public var redisShards: Int?
    /// An overload run's second phase: after `duration` at `rate` (the flood), this rate for this
    /// long, to see the system back at full throughput. Needs `rate` and `duration`.
    public var recovery: RateSchedule.Phase?
    /// Health endpoints to probe every 100 ms while sending (``HealthProbe``).
    public var probes: [HealthProbe.Target] = []

    public init(
        ingressURLs: [String] = ["http://127.0.0.1:8080"], input: LoadTestInput = .api, apiToken: String = "",
        telegramSecret: String = "", postgresURL: String, slots: Int = 100, requestsPerSlot: Int = 20,
        users: Int? = nil, requestCount: Int? = nil, duration: Duration? = nil, concurrency: Int = 32,
        rate: Double? = nil, completionTimeout: Duration = .seconds(120), postgresLog: String? = nil,
        pgbench: Bool = true, recordTimeline: Bool = false, ingressOnly: Bool = false, redisURL: String? = nil,
        redisPrefix: String = "lh:", redisShards: Int? = nil
    ) {
        self.ingressURLs = ingressURLs
        self.input = input
        self.apiToken = apiToken
        self.telegramSecret = telegramSecret
        self.postgresURL = postgresURL
        self.slots = slots
        self.requestsPerSlot = requestsPerSlot
        self.users = users
        self.requestCount = requestCount
        self.duration = duration
        self.concurrency = concurrency
        self.rate = rate
        self.completionTimeout = completionTimeout
        self.postgresLog = postgresLog
        self.pgbench = pgbench
        self.recordTimeline = recordTimeline
        self.ingressOnly = ingressOnly
        self.redisURL = redisURL
        self.redisPrefix = redisPrefix
        self.redisShards = redisShards
    }

    /// When each request is due; `nil` for a closed loop.
    public var schedule: RateSchedule? {
        rate.map { RateSchedule(rate: $0, duration: duration, recovery: recovery) }
    }

    /// How late a fixed-rate client may send a request before it drops it instead (counted, never
    /// sent): an overload run's generator falls behind on a machine it shares with what it
    /// floods, and requests it sends seconds late would arrive in the recovery phase as more
    /// flood. `nil` (other runs): every request goes out, however late, and its latency counts
    /// from its due time.
    public var allowedLag: Duration? { recovery == nil ? nil : .seconds(1) }

    /// Whether one sample per answered request is kept: for a plot, or an overload run's report.
    var recordsSamples: Bool { recordTimeline || recovery != nil }

    /// The most requests one run may send (Telegram update IDs reserve 7 digits for the index).
    public static let maximumRequests = RequestPlan.indexLimit

    /// Requests to send; `nil` when only the duration bounds the run.
    public var plannedRequests: Int? {
        if let requestCount { return requestCount }
        return duration == nil ? slots * requestsPerSlot : nil
    }

    /// Users to create: `users`, or one per planned request (`slots × requestsPerSlot` when only a
    /// duration bounds the run).
    public var userCount: Int { users ?? plannedRequests ?? slots * requestsPerSlot }

    /// Why this configuration cannot run, or `nil`. The CLI reports it as a usage error before
    /// anything is sent or created.
    public var problem: String? {
        if ingressURLs.isEmpty { return "give at least one ingress URL" }
        for url in ingressURLs where !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
            return "--url \(url) must start with http:// or https://"
        }
        guard (1...1_000_000).contains(slots) else { return "--slots must be 1...1000000" }
        guard (1...100_000).contains(requestsPerSlot) else { return "--per-slot must be 1...100000" }
        guard (1...4096).contains(concurrency) else { return "--concurrency must be 1...4096" }
        if let users, !(1...10_000_000).contains(users) { return "--users must be 1...10000000" }
        if requestCount != nil && duration != nil {
            return "--requests and --duration both bound the run: give one of them"
        }
        if let requestCount, !(1...Self.maximumRequests).contains(requestCount) {
            return "--requests must be 1...\(Self.maximumRequests)"
        }
        if let duration, !(duration > .zero && duration <= .seconds(86_400)) {
            return "--duration must be 1...86400 seconds"
        }
        if let planned = plannedRequests, planned > Self.maximumRequests {
            return
                "--slots × --per-slot is \(planned) requests; at most \(Self.maximumRequests) per run (use --requests or --duration)"
        }
        if users == nil, plannedRequests ?? 0 > 10_000_000 {
            return "one user per request would create more than 10000000 users: give --users"
        }
        if let rate, !(rate > 0 && rate.isFinite) { return "--rate must be a positive number of requests per second" }
        if let recovery {
            if rate == nil || duration == nil {
                return "--recovery-rate and --recovery-duration follow a flood: give --rate and --duration too"
            }
            if !(recovery.rate > 0 && recovery.rate.isFinite) {
                return "--recovery-rate must be a positive number of requests per second"
            }
            if !(recovery.duration >= .seconds(3) && recovery.duration <= .seconds(86_400)) {
                return "--recovery-duration must be 3...86400 seconds"
            }
            if ingressOnly { return "--ingress-only awaits no outcome, so it cannot show recovery: leave one out" }
        }
        for probe in probes where !probe.url.hasPrefix("http://") {
            return "--probe \(probe.url) must be a plain http:// URL"
        }
        if ingressOnly && (redisURL ?? "").isEmpty {
            return
                "--ingress-only needs the Redis URL (--redis-url or REDIS_URL) to remove the entries the run adds to the streams"
        }
        if ingressOnly && input == .mixed {
            return "--ingress-only takes --input api or --input telegram (one stream to clean up), not mixed"
        }
        if input.sendsAPI && apiToken.isEmpty {
            return "--input \(input.rawValue) needs LEASEHOLD_API_TOKEN (the ingress's bearer token for /v1/bookings)"
        }
        if input.sendsTelegram && telegramSecret.isEmpty {
            return
                "--input \(input.rawValue) needs TELEGRAM_WEBHOOK_SECRET (the ingress's X-Telegram-Bot-Api-Secret-Token)"
        }
        return nil
    }
}
