import Foundation
import LeaseholdPostgres
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// The `leasehold notifier` role as a `Service`: delivers the outbox to the Telegram Bot API.
///
/// One loop claims rows (``OutboxStore/claim(limit:claimant:reap:)``: never more than the free
/// call slots, ``NotifierConfiguration/concurrency``, and never beyond the bot's rate limits) and
/// hands each to a child task that calls the Bot API and records the result at once
/// (``OutboxStore/record(_:for:)``). The claim commits before the call and the result commits
/// right after it, so the only window in which a reply can be sent twice is a crash between
/// Telegram accepting the call and that second commit (README, "Bot replies").
///
/// Graceful shutdown (SIGTERM): stop claiming; calls in flight get
/// ``NotifierConfiguration/drainTimeout`` to finish and be recorded (with the default request
/// timeout below the drain timeout, they always do). Calls still running after that are cancelled
/// and their rows recorded as retries (back to `pending`, the attempt counted: Telegram may have
/// received them). Rows never claimed stay `pending`. So a stopped notifier holds no row — unless
/// PostgreSQL is unreachable at that moment, in which case the claim timeout returns them.
public struct NotifierService: Service, CustomStringConvertible {
    public let configuration: NotifierConfiguration
    private let store: OutboxStore
    private let client: BotAPIClient
    private let metrics: NotifierMetrics
    private let logger: Logger
    private let tokenPause = NIOLockedValueBox<ContinuousClock.Instant?>(nil)

    /// - Parameters:
    ///   - postgres: a few connections: one for claims, the rest for recording results.
    ///   - client: the Bot API client (its base URL and token); shut it down after `run()` returns.
    public init(
        configuration: NotifierConfiguration, postgres: PostgresClient, client: BotAPIClient,
        metrics: NotifierMetrics = NotifierMetrics(), logger: Logger
    ) {
        self.configuration = configuration
        self.store = OutboxStore(postgres: postgres, configuration: configuration)
        self.client = client
        self.metrics = metrics
        self.logger = logger
    }

    /// `NotifierService(<name>)`: ServiceLifecycle logs its services, and the default description
    /// would list every field.
    public var description: String { "NotifierService(\(configuration.name))" }

    /// Whether Telegram rejected the token (401/404) within the last
    /// ``NotifierConfiguration/misconfiguredPause``: `/readyz` reports not ready meanwhile.
    public var tokenRejected: Bool {
        tokenPause.withLockedValue { until in until.map { ContinuousClock.now < $0 } ?? false }
    }

    public func run() async throws {
        logger.info(
            "notifier started",
            metadata: [
                "name": "\(configuration.name)", "api": "\(configuration.apiBaseURL)",
                "rate_per_second": "\(configuration.globalRate)", "chat_interval": "\(configuration.chatInterval)",
                "concurrency": "\(configuration.concurrency)",
            ])
        // The rows whose call is in flight or whose result is not recorded yet (with the result,
        // once known).
        let unrecorded = NIOLockedValueBox<[Int64: (row: ClaimedReply, result: OutboxCompletion?)]>([:])
        let (completions, completed) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        var freed = completions.makeAsyncIterator()
        // Stale claims are looked for a few times per claim timeout, not on every claim.
        let reapInterval = min(configuration.claimTimeout / 4, .seconds(5))

        await withDiscardingTaskGroup { group in
            var claimNumber = 0
            var failures = 0
            var lastReap = ContinuousClock.now - reapInterval
            var lastGauges = ContinuousClock.now - configuration.gaugeInterval
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                let now = ContinuousClock.now
                if now - lastGauges >= configuration.gaugeInterval {
                    lastGauges = now
                    await refreshGauges(inFlight: unrecorded.withLockedValue { $0.count })
                }
                if let until = tokenPause.withLockedValue({ $0 }), until > now {
                    await pause(for: min(until - now, configuration.gaugeInterval))
                    continue
                }
                let free = configuration.concurrency - unrecorded.withLockedValue { $0.count }
                guard free > 0 else {
                    await freed.next()
                    continue
                }

                claimNumber += 1
                let reap = now - lastReap >= reapInterval
                let claim: OutboxStore.Claim
                do {
                    claim = try await store.claim(
                        limit: free, claimant: "\(configuration.name)#\(claimNumber)", reap: reap)
                    failures = 0
                    if reap { lastReap = now }
                } catch {
                    failures += 1
                    logger.error("claiming outbox rows failed; retrying", metadata: ["error": "\(error)"])
                    await pause(for: .milliseconds(min(5_000, 100 * (1 << min(failures, 6)))))
                    continue
                }
                if !claim.reaped.isEmpty {
                    metrics.reclaimed(claim.reaped.count)
                    logger.warning(
                        "stale claims taken back (to pending, or failed when out of attempts): their notifier stopped mid-call, so these replies may be sent twice",
                        metadata: [
                            "outbox_ids": "\(claim.reaped.map(\.id))",
                            "claimed_by": "\(Set(claim.reaped.map(\.claimedBy)).sorted())",
                        ])
                }
                for row in claim.rows {
                    unrecorded.withLockedValue { $0[row.id] = (row, nil) }
                    group.addTask {
                        if let notRecorded = await deliver(row) {
                            unrecorded.withLockedValue { $0[row.id] = (row, notRecorded) }
                        } else {
                            unrecorded.withLockedValue { _ = $0.removeValue(forKey: row.id) }
                        }
                        completed.yield()
                    }
                }
                if claim.rows.isEmpty {
                    if claim.paused, let wait = claim.wait {
                        logger.debug("bot paused after 429", metadata: ["for": "\(wait)"])
                    }
                    await pause(for: min(claim.wait ?? configuration.pollInterval, configuration.gaugeInterval))
                }
            }

            // Draining: no more claims; calls in flight finish and are recorded, up to the drain timeout.
            let remaining = unrecorded.withLockedValue { $0.count }
            logger.info(
                "draining", metadata: ["in_flight": "\(remaining)", "timeout": "\(configuration.drainTimeout)"])
            let deadline = ContinuousClock.now + configuration.drainTimeout
            while !unrecorded.withLockedValue({ $0.isEmpty }), ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(10))
            }
            let abandoned = unrecorded.withLockedValue { $0.count }
            if abandoned > 0 {
                logger.warning(
                    "drain timeout: cancelling calls in flight; their rows go back to pending",
                    metadata: ["in_flight": "\(abandoned)"])
                group.cancelAll()
            }
        }
        completed.finish()
        // Results not recorded in time (the task was cancelled at the drain timeout): record them now,
        // outside the cancelled tasks, so no row is left `sending`. A call cancelled mid-flight comes
        // back as a retry ("request cancelled"); Telegram may have received it, so the attempt counts.
        for (row, result) in unrecorded.withLockedValue({ Array($0.values) }).sorted(by: { $0.row.id < $1.row.id }) {
            let completion =
                result
                ?? .retry(
                    delay: .zero, reason: "shutdown: call abandoned at the drain timeout; Telegram may have received it"
                )
            do {
                try await store.record(completion, for: row)
            } catch {
                logger.error(
                    "could not record an abandoned row's result; it goes back to pending after the claim timeout",
                    metadata: ["outbox_id": "\(row.id)", "error": "\(error)"])
            }
        }
        await refreshGauges(inFlight: 0)
        logger.info("notifier stopped", metadata: ["name": "\(configuration.name)"])
    }

    /// Sends one claimed row and records the result. Returns the result when it could not be
    /// recorded because the task was cancelled (the caller records it after the drain), else `nil`.
    private func deliver(_ row: ClaimedReply) async -> OutboxCompletion? {
        var logger = self.logger
        logger[metadataKey: "outbox_id"] = "\(row.id)"
        logger[metadataKey: "message_key"] = "\(row.messageKey)"
        logger[metadataKey: "method"] = "\(row.method)"
        logger[metadataKey: "attempt"] = "\(row.attempt)"
        if let chat = row.chatID { logger[metadataKey: "chat_id"] = "\(chat)" }

        let outcome: BotAPIOutcome?
        let completion: OutboxCompletion
        if !BotAPIClient.supportedMethods.contains(row.method) {
            outcome = nil
            completion = .failed(
                reason:
                    "unsupported Bot API method \(row.method) (supported: \(BotAPIClient.supportedMethods.sorted().joined(separator: ", ")))"
            )
        } else if row.payload.first != "{" {
            outcome = nil
            completion = .failed(reason: "payload is not a JSON object")
        } else {
            let started = ContinuousClock.now
            let answer = await client.call(method: row.method, payload: row.payload)
            metrics.requestTook(started.duration(to: .now))
            outcome = answer
            completion = OutboxCompletion.deciding(
                answer, attempt: row.attempt, policy: configuration.retryPolicy,
                misconfiguredPause: configuration.misconfiguredPause)
            if case .botMisconfigured = answer {
                tokenPause.withLockedValue { $0 = ContinuousClock.now + configuration.misconfiguredPause }
            }
        }

        return await record(completion, for: row, outcome: outcome, logger: logger)
    }

    /// Records the result, retrying while PostgreSQL is unreachable: the call was made, so its
    /// result must not be lost (a row left `sending` is sent again after the claim timeout).
    private func record(_ completion: OutboxCompletion, for row: ClaimedReply, outcome: BotAPIOutcome?, logger: Logger)
        async -> OutboxCompletion?
    {
        metrics.count(completion, method: row.method, outcome: outcome)
        switch completion {
        case .sent(let messageID):
            logger.debug("sent", metadata: ["telegram_message_id": "\(messageID.map(String.init) ?? "-")"])
        case .failed(let reason):
            logger.warning("reply failed for good; not retried", metadata: ["reason": "\(reason)"])
        case .retry(let delay, let reason):
            logger.warning("call failed; will retry", metadata: ["reason": "\(reason)", "in": "\(delay)"])
        case .rateLimited(let retryAfter, let reason):
            logger.warning(
                "Telegram rate limit: pausing the bot",
                metadata: ["reason": "\(reason)", "retry_after": "\(retryAfter)"])
        case .handBack(let delay, let reason):
            logger.error(
                "Telegram refused the bot token or API URL; check TELEGRAM_BOT_TOKEN and TELEGRAM_API_BASE_URL; the reply is handed back",
                metadata: ["reason": "\(reason)", "pausing_for": "\(delay)"])
        }

        var failures = 0
        while true {
            do {
                if try await store.record(completion, for: row) == false {
                    metrics.lostClaim()
                    logger.warning(
                        "result not recorded: the row was taken back as stale (this notifier looked dead) and may have been sent again by another notifier",
                        metadata: ["result": "\(completion.label)"])
                }
                return nil
            } catch {
                failures += 1
                if Task.isCancelled {
                    logger.warning(
                        "result not recorded before the drain timeout; recording it after the drain",
                        metadata: ["result": "\(completion.label)", "error": "\(error)"])
                    return completion
                }
                logger.error(
                    "recording the result failed; retrying",
                    metadata: ["result": "\(completion.label)", "error": "\(error)", "failures": "\(failures)"])
                try? await Task.sleep(for: .milliseconds(min(5_000, 50 * (1 << min(failures, 7)))))
            }
        }
    }

    private func refreshGauges(inFlight: Int) async {
        metrics.inFlight(inFlight)
        do {
            metrics.record(try await store.backlog())
        } catch {
            logger.warning("reading the outbox backlog failed", metadata: ["error": "\(error)"])
        }
    }

    /// Sleeps, waking early on graceful shutdown.
    private func pause(for duration: Duration) async {
        guard duration > .zero else { return }
        try? await cancelWhenGracefulShutdown {
            try await Task.sleep(for: duration)
        }
    }
}
