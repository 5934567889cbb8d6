import Foundation
import LeaseholdCore
import LeaseholdPostgres

/// The notifier's SQL: claiming outbox rows, recording results, reading the backlog.
///
/// ## Claiming
///
/// One short transaction (``claim(limit:claimant:reap:)``), committed **before** any HTTP call:
///
/// 1. `pg_advisory_xact_lock` — claims from every notifier take turns. This is what makes the rate
///    limits hold for the bot as a whole rather than per process: each claim sees every earlier
///    claim committed. A claim takes a millisecond or two, so the turns cost nothing noticeable.
/// 2. Stale claims go back to `pending`: a row `sending` for longer than the claim timeout
///    belongs to a notifier that died mid-call (the only path to a double send; see the README).
/// 3. The bot's pause (`outbox_throttle.paused_until`, set by a 429) — nothing is claimed while
///    it lasts.
/// 4. The global budget: at most ``globalRate`` claims in any sliding second, and at most a tenth
///    of that in any 100 ms (counted on `claimed_at`, kept after sending). The second rule spreads
///    the sends over the second: bursts of a whole second's budget at each second's edge would,
///    give or take a few milliseconds of network jitter, land as twice the rate in Telegram's
///    second.
/// 5. The rows: `SELECT … FOR UPDATE SKIP LOCKED`, oldest first, only rows that are due
///    (`next_attempt_at`), the oldest open row of their chat (so a chat's replies arrive in
///    order), and whose chat got nothing in the last chat interval (1 s; 3 s for groups).
///    `SKIP LOCKED` means a row another transaction holds is passed over, never waited for and
///    never taken twice.
/// 6. `UPDATE … SET status = 'sending', claimed_by, claimed_at, attempts = attempts + 1`.
///
/// ## Recording
///
/// ``record(_:for:)`` updates the row only `WHERE status = 'sending' AND claimed_by = <this claim>`:
/// if the row was taken back meanwhile (this notifier looked dead), the late answer changes nothing
/// and the method returns `false`.
public struct OutboxStore: Sendable {
    /// `pg_advisory_xact_lock` key serialising claims: "LHNOTIFY".
    public static let claimLockKey: Int64 = 0x4C48_4E4F_5449_4659

    public let postgres: PostgresClient
    public let globalRate: Int
    public let chatInterval: Duration
    public let groupChatInterval: Duration
    public let claimTimeout: Duration
    /// A stale claim of a row that has used this many attempts fails the row instead of returning
    /// it: a reply whose every attempt ends with its notifier dead is not retried forever.
    public let maxAttempts: Int

    public init(
        postgres: PostgresClient, globalRate: Int, chatInterval: Duration, groupChatInterval: Duration,
        claimTimeout: Duration, maxAttempts: Int
    ) {
        self.postgres = postgres
        self.globalRate = globalRate
        self.chatInterval = chatInterval
        self.groupChatInterval = groupChatInterval
        self.claimTimeout = claimTimeout
        self.maxAttempts = maxAttempts
    }

    public init(postgres: PostgresClient, configuration: NotifierConfiguration) {
        self.init(
            postgres: postgres, globalRate: configuration.globalRate, chatInterval: configuration.chatInterval,
            groupChatInterval: configuration.groupChatInterval, claimTimeout: configuration.claimTimeout,
            maxAttempts: configuration.retryPolicy.defaults.maxAttempts)
    }

    /// What one claim found.
    public struct Claim: Sendable {
        /// The rows now `sending` under this claim, oldest first.
        public var rows: [ClaimedReply]
        /// Stale claims returned to `pending` (or failed, out of attempts) by this transaction:
        /// `(outbox id, old claimed_by)`.
        public var reaped: [(id: Int64, claimedBy: String)]
        /// When nothing could be claimed for a known reason (the bot is paused, the second's budget
        /// is spent), how long until that changes; `nil` otherwise.
        public var wait: Duration?
        /// Whether the bot is paused by a 429.
        public var paused: Bool
    }

    private static let options = PostgresTransactionOptions(lockTimeout: .seconds(5), statementTimeout: .seconds(10))

    /// Claims up to `limit` deliverable rows for `claimant` (`<name>#<n>`, unique per claim); with
    /// `reap`, first returns stale claims to `pending`.
    public func claim(limit: Int, claimant: String, reap: Bool) async throws -> Claim {
        let (rate, chatMs, groupMs, timeoutMs, maxAttempts) = (
            Int64(globalRate), chatInterval.millisecondsRoundedUp, groupChatInterval.millisecondsRoundedUp,
            claimTimeout.millisecondsRoundedUp, Int32(clamping: maxAttempts)
        )
        return try await postgres.withTransaction(Self.options) { tx in
            try await tx.query("SELECT pg_advisory_xact_lock(\(Self.claimLockKey))")

            var reaped: [(id: Int64, claimedBy: String)] = []
            if reap {
                for row in try await tx.query(
                    """
                    UPDATE outbox o
                    SET status = CASE WHEN o.attempts >= \(maxAttempts) THEN 'failed' ELSE 'pending' END,
                        failed_at = CASE WHEN o.attempts >= \(maxAttempts) THEN clock_timestamp() END,
                        next_attempt_at = clock_timestamp(),
                        last_error = CASE WHEN o.attempts >= \(maxAttempts) THEN 'gave up after ' || o.attempts
                                          || ' attempts: ' ELSE '' END
                            || 'claim ' || o.claimed_by || ' expired after ' || \(timeoutMs)
                            || ' ms (its notifier stopped mid-call; the reply may have been sent already)'
                    FROM (SELECT id, claimed_by FROM outbox
                          WHERE status = 'sending' AND claimed_at < clock_timestamp() - \(timeoutMs) * interval '1 millisecond'
                          ORDER BY id FOR UPDATE) stale
                    WHERE o.id = stale.id
                    RETURNING o.id, stale.claimed_by
                    """)
                {
                    let (id, claimedBy) = try row.decode(Int64.self, String?.self)
                    reaped.append((id, claimedBy ?? "?"))
                }
            }

            let pausedMs =
                try await tx.query(
                    """
                    SELECT CASE WHEN paused_until > clock_timestamp()
                                THEN ceil(extract(epoch FROM paused_until - clock_timestamp()) * 1000)::bigint
                                ELSE 0 END
                    FROM outbox_throttle
                    """
                ).first?.decode(Int64.self, at: 0) ?? 0
            if pausedMs > 0 {
                return Claim(rows: [], reaped: reaped, wait: .milliseconds(pausedMs), paused: true)
            }

            // Claims in the last second, and in the last tenth of it: at most `rate` per second,
            // spread over the second (at most a tenth of it per 100 ms) rather than in one burst.
            let window = try await tx.query(
                """
                WITH t AS (SELECT clock_timestamp() AS now)
                SELECT count(*),
                       count(*) FILTER (WHERE o.claimed_at > t.now - interval '100 milliseconds'),
                       ceil(extract(epoch FROM min(o.claimed_at) + interval '1 second' - min(t.now)) * 1000)::bigint,
                       ceil(extract(epoch FROM min(o.claimed_at) FILTER (
                                WHERE o.claimed_at > t.now - interval '100 milliseconds')
                            + interval '100 milliseconds' - min(t.now)) * 1000)::bigint
                FROM outbox o, t WHERE o.claimed_at > t.now - interval '1 second'
                """
            ).single()
            let (inSecond, inTenth, secondFreesIn, tenthFreesIn) = try window.decode(
                Int64.self, Int64.self, Int64?.self, Int64?.self)
            let burst = (rate + 9) / 10
            let budget = min(Int64(limit), rate - inSecond, burst - inTenth)
            guard budget > 0 else {
                let freesIn = inSecond >= rate ? secondFreesIn : tenthFreesIn
                return Claim(rows: [], reaped: reaped, wait: .milliseconds(max(1, freesIn ?? 1)), paused: false)
            }

            // The chat's last claim is one backward step in the (chat_id, claimed_at) index, however
            // long the chat's history.
            var ids: [Int64] = []
            for row in try await tx.query(
                """
                SELECT o.id FROM outbox o
                WHERE o.status = 'pending' AND o.next_attempt_at <= statement_timestamp()
                  AND (o.chat_id IS NULL OR (
                        NOT EXISTS (SELECT 1 FROM outbox e
                                    WHERE e.chat_id = o.chat_id AND e.id < o.id AND e.status IN ('pending', 'sending'))
                    AND coalesce((SELECT max(r.claimed_at) FROM outbox r WHERE r.chat_id = o.chat_id), '-infinity')
                        <= statement_timestamp()
                           - CASE WHEN o.chat_id < 0 THEN \(groupMs) ELSE \(chatMs) END * interval '1 millisecond'))
                ORDER BY o.id
                LIMIT \(budget)
                FOR UPDATE OF o SKIP LOCKED
                """)
            {
                ids.append(try row.decode(Int64.self, at: 0))
            }
            guard !ids.isEmpty else { return Claim(rows: [], reaped: reaped, wait: nil, paused: false) }

            var rows: [ClaimedReply] = []
            for row in try await tx.query(
                """
                UPDATE outbox SET status = 'sending', claimed_by = \(claimant), claimed_at = clock_timestamp(),
                    attempts = attempts + 1
                WHERE id = ANY(\(PostgresInt8Array(ids)))
                RETURNING id, message_key, chat_id, method, payload, attempts
                """)
            {
                let (id, key, chat, method, payload, attempts) = try row.decode(
                    Int64.self, String.self, Int64?.self, String.self, String.self, Int32.self)
                rows.append(
                    ClaimedReply(
                        id: id, messageKey: key, chatID: chat, method: method, payload: payload,
                        attempt: Int(attempts), claim: claimant))
            }
            rows.sort { $0.id < $1.id }
            return Claim(rows: rows, reaped: reaped, wait: nil, paused: false)
        }
    }

    /// Records `completion` for `row`. Returns `false` when the row no longer carries this claim
    /// (it was taken back as stale and possibly sent by another notifier): nothing was changed.
    @discardableResult
    public func record(_ completion: OutboxCompletion, for row: ClaimedReply) async throws -> Bool {
        let (id, claim) = (row.id, row.claim)
        return try await postgres.withTransaction(Self.options) { tx in
            let changed: Int
            switch completion {
            case .sent(let messageID):
                changed = try await tx.execute(
                    """
                    UPDATE outbox SET status = 'sent', sent_at = clock_timestamp(), telegram_message_id = \(messageID)
                    WHERE id = \(id) AND status = 'sending' AND claimed_by = \(claim)
                    """)
            case .failed(let reason):
                changed = try await tx.execute(
                    """
                    UPDATE outbox SET status = 'failed', failed_at = clock_timestamp(), last_error = \(reason)
                    WHERE id = \(id) AND status = 'sending' AND claimed_by = \(claim)
                    """)
            case .retry(let delay, let reason):
                changed = try await tx.execute(
                    """
                    UPDATE outbox SET status = 'pending', last_error = \(reason),
                        next_attempt_at = clock_timestamp() + \(delay.millisecondsRoundedUp) * interval '1 millisecond'
                    WHERE id = \(id) AND status = 'sending' AND claimed_by = \(claim)
                    """)
            case .rateLimited(let retryAfter, let reason):
                let pauseMs = retryAfter.millisecondsRoundedUp
                changed = try await tx.execute(
                    """
                    UPDATE outbox SET status = 'pending', last_error = \(reason), attempts = attempts - 1,
                        next_attempt_at = clock_timestamp() + \(pauseMs) * interval '1 millisecond'
                    WHERE id = \(id) AND status = 'sending' AND claimed_by = \(claim)
                    """)
                // The pause is the bot's, not the row's: it stands even if the row was taken back.
                try await tx.execute(
                    """
                    UPDATE outbox_throttle
                    SET paused_until = greatest(paused_until, clock_timestamp() + \(pauseMs) * interval '1 millisecond'),
                        reason = \(reason)
                    """)
            case .handBack(let delay, let reason):
                changed = try await tx.execute(
                    """
                    UPDATE outbox SET status = 'pending', last_error = \(reason), attempts = greatest(0, attempts - 1),
                        next_attempt_at = clock_timestamp() + \(delay.millisecondsRoundedUp) * interval '1 millisecond'
                    WHERE id = \(id) AND status = 'sending' AND claimed_by = \(claim)
                    """)
            }
            return changed == 1
        }
    }

    /// The outbox at a glance, for the gauges and `/readyz`.
    public struct Backlog: Sendable, Equatable {
        /// Rows waiting to be sent (due or backing off).
        public var pending: Int64
        /// Of those, rows due now.
        public var due: Int64
        /// Rows claimed, their call in flight.
        public var sending: Int64
        /// Rows that failed for good.
        public var failed: Int64
        /// Age of the oldest pending row, in seconds (0 when none).
        public var oldestPendingAge: Double
        /// Seconds left of the bot's 429 pause (0 when not paused).
        public var pausedFor: Double
    }

    /// Counts by status (each through its partial index) and the pause.
    public func backlog() async throws -> Backlog {
        try await postgres.withConnection { connection in
            let pending = try await connection.query(
                """
                SELECT count(*), count(*) FILTER (WHERE next_attempt_at <= clock_timestamp()),
                       coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8
                FROM outbox WHERE status = 'pending'
                """
            ).single()
            let (count, due, age) = try pending.decode(Int64.self, Int64.self, Double.self)
            let sending = try await connection.query("SELECT count(*) FROM outbox WHERE status = 'sending'")
                .single().decode(Int64.self, at: 0)
            let failed = try await connection.query("SELECT count(*) FROM outbox WHERE status = 'failed'")
                .single().decode(Int64.self, at: 0)
            let paused =
                try await connection.query(
                    """
                    SELECT CASE WHEN paused_until > clock_timestamp()
                                THEN extract(epoch FROM paused_until - clock_timestamp())::float8 ELSE 0 END
                    FROM outbox_throttle
                    """
                ).first?.decode(Double.self, at: 0) ?? 0
            return Backlog(
                pending: count, due: due, sending: sending, failed: failed, oldestPendingAge: age, pausedFor: paused)
        }
    }
}
