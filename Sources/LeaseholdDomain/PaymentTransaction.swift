import LeaseholdPostgres

/// What a payment transaction did with a notification; the inbox records `outcome`.
public enum PaymentOutcome: String, Sendable, Equatable {
    /// The event changed the payment (and the subscription): webhook_log SUCCESS.
    case applied
    /// A late or repeated event, recorded and not applied: webhook_log IGNORED.
    case ignored
    /// The event contradicts the payment (amount, currency or an over-refund) and can never
    /// apply: webhook_log FAILED, not retried.
    case rejected
}

/// The result of ``PaymentTransaction/run(_:key:logID:stream:entryID:on:)``.
public struct PaymentResult: Sendable, Equatable {
    public var outcome: PaymentOutcome
    /// Why the event was ignored or rejected.
    public var note: String?
    /// `true` when the message key was already in the inbox (a redelivery or a provider retry).
    public var duplicate: Bool

    public init(outcome: PaymentOutcome, note: String? = nil, duplicate: Bool = false) {
        self.outcome = outcome
        self.note = note
        self.duplicate = duplicate
    }
}

/// A notification that cannot apply yet and must be retried: the payment is not in the
/// database (the bot has not recorded it yet), or a refund arrived before `payment.succeeded`.
/// The transaction rolls back; the queue retries with backoff and dead-letters after its limit.
public struct PaymentNotYetApplicableError: Error, Sendable, Equatable, CustomStringConvertible {
    public var paymentID: String
    public var reason: String

    public var description: String { "payment \(paymentID): \(reason); will retry" }
}

/// The payment transaction: the fix of incident 001 (Runbooks/architecture.md: `FOR UPDATE`
/// on the nullable side of an outer join) as architecture.
///
/// Runs inside one PostgreSQL transaction (the caller's `withTransaction`):
///
/// 1. **Inbox first** (`INSERT … ON CONFLICT DO NOTHING` of `yk:<event>:<object.id>`): a key
///    already there is a provider retry or a redelivery — IGNORED, nothing changes.
/// 2. **Lock the payment, and only the payment**: the query joins user and plan and
///    outer-joins the nullable subscription, and locks with `FOR UPDATE OF p`. A bare
///    `FOR UPDATE` here is exactly what PostgreSQL refused in the incident ("FOR UPDATE cannot
///    be applied to the nullable side of an outer join"); a test runs that shape and checks it
///    still fails, so this guard stays honest.
/// 3. **Decide** with ``PaymentStateMachine`` (one-way; late or repeated events are ignored).
/// 4. **Apply**: `payment.succeeded` locks the user's subscription (creating it on the first
///    payment) and extends it from `max(now, current end)` by the plan's duration; a refund takes
///    back the refunded share of the time this payment bought (README, "Refunds"). Lock order is
///    always payment, then subscription, so two payments of one user cannot deadlock.
/// 5. **Record**: inbox outcome, webhook_log SUCCESS/IGNORED/FAILED, an outbox reply to the
///    user's chat — all in the same transaction as the change.
public struct PaymentTransaction: Sendable {
    public init() {}

    /// The lock query: payment, user and plan, and the nullable subscription, locking only the
    /// payment row. Exposed for the test that keeps the incident's shape failing.
    public static func lockPaymentQuery(_ providerPaymentID: String, amount: String, currency: String) -> PostgresQuery
    {
        """
        SELECT p.id, p.status, p.user_id, p.subscription_id, p.period_days, pl.duration_days, pl.title,
               u.telegram_chat_id, s.current_period_end,
               (p.amount = \(amount)::numeric AND p.currency = \(currency)) AS amount_matches,
               (p.amount - p.refunded_amount) >= \(amount)::numeric AS refund_fits,
               (p.refunded_amount + \(amount)::numeric) = p.amount AS refund_completes,
               p.amount::text || ' ' || p.currency AS recorded_amount
        FROM payments p
        JOIN users u ON u.id = p.user_id
        JOIN plans pl ON pl.id = p.plan_id
        LEFT JOIN subscriptions s ON s.id = p.subscription_id
        WHERE p.provider_payment_id = \(providerPaymentID)
        FOR UPDATE OF p
        """
    }

    /// Applies `notification` (dedupe key `key`); `logID` is its RECEIVED webhook_log row.
    public func run(
        _ notification: YooKassaNotification.Valid, key: String, logID: Int64?, stream: String? = nil,
        entryID: String? = nil, on connection: PostgresConnection
    ) throws -> PaymentResult {
        // 1. Inbox.
        let inserted = try connection.execute(
            """
            INSERT INTO inbox (message_key, kind, outcome, stream, entry_id)
            VALUES (\(key), \(YooKassaNotification.kind), 'pending', \(stream), \(entryID))
            ON CONFLICT (message_key) DO NOTHING
            """)
        if inserted == 0 {
            let recorded = try connection.query("SELECT outcome FROM inbox WHERE message_key = \(key)").single()
                .decode(String.self, at: 0)
            let note = "duplicate delivery of \(key); first delivery's outcome: \(recorded)"
            try WebhookLog.finish(logID, .ignored, note: note, on: connection)
            return PaymentResult(outcome: PaymentOutcome(rawValue: recorded) ?? .ignored, note: note, duplicate: true)
        }

        // 2. The payment, locked alone.
        let rows = try connection.query(
            Self.lockPaymentQuery(notification.paymentID, amount: notification.amount, currency: notification.currency))
        guard let row = rows.first else {
            throw PaymentNotYetApplicableError(
                paymentID: notification.paymentID, reason: "not in the database yet (the bot has not recorded it)")
        }
        let payment = try LockedPayment(row)
        guard let current = PaymentStatus(rawValue: payment.status) else {
            return try finish(
                .rejected, "unknown payment status \(payment.status)", notification, key, logID, nil, connection)
        }

        // 3. Decide.
        let target: PaymentStatus
        switch PaymentStateMachine.decide(notification.event, current: current) {
        case .ignore(let reason):
            return try finish(.ignored, reason, notification, key, logID, nil, connection)
        case .notYet(let reason):
            throw PaymentNotYetApplicableError(paymentID: notification.paymentID, reason: reason)
        case .apply(let to):
            target = to
        }

        // 4. Apply.
        let reply: String?
        switch notification.event {
        case .paymentWaitingForCapture:
            guard payment.amountMatches else { return try mismatch(payment, notification, key, logID, connection) }
            try setStatus(target, payment: payment.id, on: connection)
            reply = nil
        case .paymentSucceeded:
            guard payment.amountMatches else { return try mismatch(payment, notification, key, logID, connection) }
            reply = try activate(payment, on: connection)
        case .paymentCanceled:
            try connection.execute(
                """
                UPDATE payments SET status = 'canceled', cancellation_reason = \(notification.cancellationReason),
                       updated_at = now()
                WHERE id = \(payment.id)
                """)
            reply =
                "❌ Оплата не прошла\(notification.cancellationReason.map { " (\($0))" } ?? ""). Подписка не изменилась."
        case .refundSucceeded:
            guard payment.refundFits else {
                return try finish(
                    .rejected,
                    "refund of \(notification.amount) \(notification.currency) exceeds what is left of "
                        + "\(payment.recordedAmount)", notification, key, logID, nil, connection)
            }
            reply = try refund(payment, notification, on: connection)
        }
        return try finish(.applied, nil, notification, key, logID, reply.map { (payment.chatID, $0) }, connection)
    }

    /// The locked payment row and what the lock query computed about the notification's amount.
    private struct LockedPayment {
        var id: Int64
        var status: String
        var userID: Int64
        var subscriptionID: Int64?
        var periodDays: Int32?
        var durationDays: Int32
        var planTitle: String
        var chatID: Int64?
        var amountMatches: Bool
        var refundFits: Bool
        var refundCompletes: Bool
        var recordedAmount: String

        init(_ row: PostgresRow) throws {
            id = try row.decode(Int64.self, column: "id")
            status = try row.decode(String.self, column: "status")
            userID = try row.decode(Int64.self, column: "user_id")
            subscriptionID = try row.decode(Int64?.self, column: "subscription_id")
            periodDays = try row.decode(Int32?.self, column: "period_days")
            durationDays = try row.decode(Int32.self, column: "duration_days")
            planTitle = try row.decode(String.self, column: "title")
            chatID = try row.decode(Int64?.self, column: "telegram_chat_id")
            amountMatches = try row.decode(Bool.self, column: "amount_matches")
            refundFits = try row.decode(Bool.self, column: "refund_fits")
            refundCompletes = try row.decode(Bool.self, column: "refund_completes")
            recordedAmount = try row.decode(String.self, column: "recorded_amount")
        }
    }

    private func setStatus(_ status: PaymentStatus, payment: Int64, on connection: PostgresConnection) throws {
        try connection.execute(
            "UPDATE payments SET status = \(status.rawValue), updated_at = now() WHERE id = \(payment)")
    }

    /// `payment.succeeded`: activate or extend the user's subscription, then mark the payment.
    private func activate(_ payment: LockedPayment, on connection: PostgresConnection) throws -> String {
        // The subscription, locked after the payment (fixed order). The payment's own link wins;
        // a payment without one (the nullable side) uses the user's subscription, created here
        // on the first payment.
        var subscriptionID = payment.subscriptionID
        if subscriptionID == nil {
            try connection.execute(
                """
                INSERT INTO subscriptions (user_id, plan_id, status, current_period_end)
                SELECT user_id, plan_id, 'active', now() FROM payments WHERE id = \(payment.id)
                ON CONFLICT (user_id) DO NOTHING
                """)
            subscriptionID = try connection.query(
                "SELECT id FROM subscriptions WHERE user_id = \(payment.userID) FOR UPDATE"
            ).single().decode(Int64.self, at: 0)
        } else {
            _ = try connection.query("SELECT id FROM subscriptions WHERE id = \(subscriptionID) FOR UPDATE").single()
        }
        // Extend from max(now, current end): paying early never loses days, paying late never
        // back-fills the gap.
        let end = try connection.query(
            """
            UPDATE subscriptions s
            SET current_period_end = greatest(now(), s.current_period_end) + make_interval(days => \(payment.durationDays)),
                status = 'active', plan_id = p.plan_id, updated_at = now()
            FROM payments p
            WHERE s.id = \(subscriptionID) AND p.id = \(payment.id)
            RETURNING to_char(s.current_period_end AT TIME ZONE 'Europe/Moscow', 'DD.MM.YYYY')
            """
        ).single().decode(String.self, at: 0)
        try connection.execute(
            """
            UPDATE payments SET status = 'succeeded', subscription_id = \(subscriptionID),
                   period_days = \(payment.durationDays), succeeded_at = now(), updated_at = now()
            WHERE id = \(payment.id)
            """)
        let title = payment.planTitle.isEmpty ? "" : " «\(payment.planTitle)»"
        return "✅ Оплата получена. Подписка\(title) активна до \(end)."
    }

    /// `refund.succeeded`: record the refund; take back the refunded share of the time this
    /// payment bought; a subscription whose end is then in the past ends now.
    private func refund(
        _ payment: LockedPayment, _ notification: YooKassaNotification.Valid, on connection: PostgresConnection
    ) throws -> String {
        let status: PaymentStatus = payment.refundCompletes ? .refunded : .succeeded
        try connection.execute(
            """
            UPDATE payments SET refunded_amount = refunded_amount + \(notification.amount)::numeric,
                   status = \(status.rawValue), updated_at = now()
            WHERE id = \(payment.id)
            """)
        guard let subscriptionID = payment.subscriptionID, let days = payment.periodDays else {
            return "↩️ Возврат \(notification.amount) \(notification.currency) оформлен."
        }
        _ = try connection.query("SELECT id FROM subscriptions WHERE id = \(subscriptionID) FOR UPDATE").single()
        let ended = try connection.query(
            """
            WITH shortened AS (
                SELECT s.id, s.current_period_end
                       - make_interval(secs => \(days) * 86400 * (\(notification.amount)::numeric / p.amount)) AS new_end
                FROM subscriptions s, payments p
                WHERE s.id = \(subscriptionID) AND p.id = \(payment.id))
            UPDATE subscriptions s
            SET current_period_end = greatest(shortened.new_end, now()),
                status = CASE WHEN shortened.new_end <= now() THEN 'ended' ELSE s.status END,
                updated_at = now()
            FROM shortened
            WHERE s.id = shortened.id
            RETURNING s.status = 'ended'
            """
        ).single().decode(Bool.self, at: 0)
        return ended
            ? "↩️ Возврат \(notification.amount) \(notification.currency) оформлен. Подписка завершена."
            : "↩️ Возврат \(notification.amount) \(notification.currency) оформлен. Срок подписки сокращён."
    }

    private func mismatch(
        _ payment: LockedPayment, _ notification: YooKassaNotification.Valid, _ key: String, _ logID: Int64?,
        _ connection: PostgresConnection
    ) throws -> PaymentResult {
        try finish(
            .rejected,
            "amount mismatch: notification says \(notification.amount) \(notification.currency), "
                + "the payment is \(payment.recordedAmount)", notification, key, logID, nil, connection)
    }

    /// Records the outcome in the inbox and webhook_log and queues the reply.
    private func finish(
        _ outcome: PaymentOutcome, _ note: String?, _ notification: YooKassaNotification.Valid, _ key: String,
        _ logID: Int64?, _ reply: (chatID: Int64?, text: String)?, _ connection: PostgresConnection
    ) throws -> PaymentResult {
        try connection.execute(
            """
            UPDATE inbox SET outcome = \(outcome.rawValue), processed_at = clock_timestamp()
            WHERE message_key = \(key)
            """)
        let status: WebhookLog.Status =
            switch outcome {
            case .applied: .success
            case .ignored: .ignored
            case .rejected: .failed
            }
        try WebhookLog.finish(logID, status, note: note, on: connection)
        if let reply, let chat = reply.chatID {
            try connection.execute(
                """
                INSERT INTO outbox (message_key, chat_id, method, payload)
                VALUES (\(key), \(chat), 'sendMessage', jsonb_build_object('chat_id', \(chat), 'text', \(reply.text)))
                """)
        }
        return PaymentResult(outcome: outcome, note: note)
    }
}
