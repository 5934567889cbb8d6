-- The payment transaction as one function, like the booking's (0007): one round trip from the
-- worker instead of one per statement, every statement's plan cached for the connection's
-- lifetime, and the payment's row lock held only while the function runs inside the server.
--
-- It takes the same locks in the same order as the statements it replaces, and the order is the
-- law that keeps two payments of one user from deadlocking:
--
--   1. inbox row (INSERT … ON CONFLICT DO NOTHING: a key seen before is a provider retry or a
--      redelivery: webhook_log IGNORED, the first delivery's outcome returned, nothing changes)
--   2. the payment row, and only it: the query joins user and plan and outer-joins the payment's
--      subscription (NULL until its first success: the nullable side), and locks with
--      FOR UPDATE OF p. A bare FOR UPDATE here is what PostgreSQL refused in incident 001
--      (Runbooks/architecture.md): "FOR UPDATE cannot be applied to the nullable side of an outer
--      join", SQLSTATE 0A000. The outer join is kept on purpose: it is the shape the bot reads a
--      payment in, and Tests/LeaseholdDomainTests/PaymentFunctionTests.swift runs a copy of this
--      function with the bare FOR UPDATE to check that PostgreSQL still refuses it.
--   3. the user's subscription, FOR UPDATE (created on the first payment), read fresh after its
--      lock, never from the join above
--
-- then the decision of the one-way state machine, the change, the inbox outcome, the webhook_log
-- row's final status (SUCCESS applied, IGNORED ignored, FAILED rejected) and an outbox row with
-- the bot's reply when the user has a chat, all in the caller's transaction (or the statement's
-- own, in autocommit).
--
-- The state machine (a status never goes back; late or repeated events are ignored, not applied):
--
--   pending ──► waiting_for_capture ──► succeeded ──► refunded
--      │  └──────────────────────────────►  ▲
--      └──────────► canceled ◄──────── waiting_for_capture
--
-- A notification that cannot apply yet (its payment is not in the database, or a refund arrived
-- before payment.succeeded) raises SQLSTATE LHNYA with the reason as its message: everything the
-- function wrote, the inbox row included, is rolled back with the statement, so the queue's retry
-- can still apply it. The worker turns LHNYA into PaymentNotYetApplicableError.
--
-- Arguments: the message key (yk:<event>:<object.id>); the event; the payment's YooKassa id
-- (object.id, or object.payment_id for a refund); the notification's amount (decimal text,
-- compared as numeric, never through a float) and currency; the cancellation reason
-- (payment.canceled); the notification's RECEIVED webhook_log row (NULL: none); stream and entry
-- id (for the record); the bot's replies, as a JSON object: "succeeded" is a format() template
-- (%1$s the plan's part, %2$s the subscription's new end), "plan" the plan's part's template (%s
-- the plan's title, left out when the title is empty), "canceled", "refunded" (no subscription to
-- shorten), "refund_shortened" and "refund_ended" are the final texts.
CREATE FUNCTION leasehold_apply_payment(
    p_key text, p_event text, p_payment text, p_amount text, p_currency text, p_cancellation_reason text,
    p_log bigint, p_stream text, p_entry text, p_replies jsonb,
    OUT o_outcome text, OUT o_note text, OUT o_duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_recorded text;
    v_amount numeric;
    v_payment record;
    v_target text;
    v_subscription bigint;
    v_new_end timestamptz;
    v_end text;
    v_ended boolean;
    v_reply text;
BEGIN
    o_duplicate := false;

    -- 1. Inbox.
    INSERT INTO inbox (message_key, kind, outcome, stream, entry_id)
    VALUES (p_key, 'yookassa.notification', 'pending', p_stream, p_entry)
    ON CONFLICT (message_key) DO NOTHING;
    IF NOT FOUND THEN
        SELECT i.outcome INTO STRICT v_recorded FROM inbox i WHERE i.message_key = p_key;
        o_duplicate := true;
        o_outcome := v_recorded;
        o_note := format('duplicate delivery of %s; first delivery''s outcome: %s', p_key, v_recorded);
        UPDATE webhook_log SET status = 'IGNORED', error = o_note, processed_at = clock_timestamp()
        WHERE id = p_log;
        RETURN;
    END IF;

    -- 2. The payment, locked alone.
    v_amount := p_amount::numeric;
    SELECT p.id, p.status, p.user_id, p.plan_id, p.subscription_id, p.period_days, p.amount,
           pl.duration_days, pl.title, u.telegram_chat_id AS chat_id,
           (p.amount = v_amount AND p.currency = p_currency) AS amount_matches,
           (p.amount - p.refunded_amount) >= v_amount AS refund_fits,
           (p.refunded_amount + v_amount) = p.amount AS refund_completes,
           p.amount::text || ' ' || p.currency AS recorded_amount
    INTO v_payment
    FROM payments p
    JOIN users u ON u.id = p.user_id
    JOIN plans pl ON pl.id = p.plan_id
    LEFT JOIN subscriptions s ON s.id = p.subscription_id
    WHERE p.provider_payment_id = p_payment
    FOR UPDATE OF p;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'LHNYA', MESSAGE = 'not in the database yet (the bot has not recorded it)';
    END IF;

    -- 3. Decide: only the forward moves apply.
    v_target := CASE p_event
        WHEN 'payment.waiting_for_capture' THEN 'waiting_for_capture'
        WHEN 'payment.succeeded' THEN 'succeeded'
        WHEN 'payment.canceled' THEN 'canceled'
        WHEN 'refund.succeeded' THEN 'refunded'
    END;
    IF v_target IS NULL THEN
        RAISE EXCEPTION 'unsupported event %', p_event;
    END IF;
    IF v_payment.status NOT IN ('pending', 'waiting_for_capture', 'succeeded', 'canceled', 'refunded') THEN
        o_outcome := 'rejected';
        o_note := 'unknown payment status ' || v_payment.status;
    ELSIF (p_event = 'payment.waiting_for_capture' AND v_payment.status = 'pending')
        OR (p_event IN ('payment.succeeded', 'payment.canceled')
            AND v_payment.status IN ('pending', 'waiting_for_capture'))
        OR (p_event = 'refund.succeeded' AND v_payment.status = 'succeeded') THEN
        o_outcome := 'applied';
    ELSIF p_event = 'refund.succeeded' AND v_payment.status IN ('pending', 'waiting_for_capture') THEN
        -- YooKassa refunds only succeeded payments: our payment.succeeded is late. Retry.
        RAISE EXCEPTION USING ERRCODE = 'LHNYA',
            MESSAGE = 'refund for a payment that is still ' || v_payment.status || '; waiting for payment.succeeded';
    ELSE
        o_outcome := 'ignored';
        o_note := CASE
            WHEN p_event = 'refund.succeeded' AND v_payment.status = 'canceled' THEN 'refund for a canceled payment'
            WHEN p_event = 'refund.succeeded' AND v_payment.status = 'refunded' THEN 'payment already fully refunded'
            WHEN v_payment.status = v_target THEN 'payment already ' || v_payment.status
            ELSE p_event || ' after the payment became ' || v_payment.status || ': status never goes back'
        END;
    END IF;

    -- 4. Apply.
    IF o_outcome = 'applied' THEN
        IF p_event IN ('payment.waiting_for_capture', 'payment.succeeded') AND NOT v_payment.amount_matches THEN
            o_outcome := 'rejected';
            o_note := 'amount mismatch: notification says ' || p_amount || ' ' || p_currency
                || ', the payment is ' || v_payment.recorded_amount;

        ELSIF p_event = 'payment.waiting_for_capture' THEN
            UPDATE payments SET status = 'waiting_for_capture', updated_at = now() WHERE id = v_payment.id;

        ELSIF p_event = 'payment.succeeded' THEN
            -- 3. The subscription, locked after the payment. The payment's own link wins; a payment
            -- without one (the nullable side) uses the user's, created here on the first payment.
            IF v_payment.subscription_id IS NULL THEN
                INSERT INTO subscriptions (user_id, plan_id, status, current_period_end)
                VALUES (v_payment.user_id, v_payment.plan_id, 'active', now())
                ON CONFLICT (user_id) DO NOTHING;
                SELECT s.id INTO STRICT v_subscription
                FROM subscriptions s WHERE s.user_id = v_payment.user_id FOR UPDATE;
            ELSE
                SELECT s.id INTO STRICT v_subscription
                FROM subscriptions s WHERE s.id = v_payment.subscription_id FOR UPDATE;
            END IF;
            -- Extend from max(now, current end): paying early never loses days, paying late never
            -- back-fills the gap.
            UPDATE subscriptions s
            SET current_period_end = greatest(now(), s.current_period_end)
                    + make_interval(days => v_payment.duration_days),
                status = 'active', plan_id = v_payment.plan_id, updated_at = now()
            WHERE s.id = v_subscription
            RETURNING to_char(s.current_period_end AT TIME ZONE 'Europe/Moscow', 'DD.MM.YYYY') INTO v_end;
            UPDATE payments
            SET status = 'succeeded', subscription_id = v_subscription, period_days = v_payment.duration_days,
                succeeded_at = now(), updated_at = now()
            WHERE id = v_payment.id;
            v_reply := format(
                p_replies ->> 'succeeded',
                CASE WHEN v_payment.title = '' THEN '' ELSE format(p_replies ->> 'plan', v_payment.title) END,
                v_end);

        ELSIF p_event = 'payment.canceled' THEN
            UPDATE payments SET status = 'canceled', cancellation_reason = p_cancellation_reason, updated_at = now()
            WHERE id = v_payment.id;
            v_reply := p_replies ->> 'canceled';

        ELSIF NOT v_payment.refund_fits THEN
            o_outcome := 'rejected';
            o_note := 'refund of ' || p_amount || ' ' || p_currency || ' exceeds what is left of '
                || v_payment.recorded_amount;

        ELSE
            -- refund.succeeded: record the refund; take back the refunded share of the time this
            -- payment bought; a subscription whose end is then in the past ends now.
            UPDATE payments
            SET refunded_amount = refunded_amount + v_amount,
                status = CASE WHEN v_payment.refund_completes THEN 'refunded' ELSE 'succeeded' END,
                updated_at = now()
            WHERE id = v_payment.id;
            IF v_payment.subscription_id IS NULL OR v_payment.period_days IS NULL THEN
                v_reply := p_replies ->> 'refunded';
            ELSE
                -- 3. The subscription, locked after the payment, its end read after the lock.
                SELECT s.id, s.current_period_end
                       - make_interval(secs => v_payment.period_days * 86400 * (v_amount / v_payment.amount))
                INTO STRICT v_subscription, v_new_end
                FROM subscriptions s WHERE s.id = v_payment.subscription_id FOR UPDATE;
                UPDATE subscriptions s
                SET current_period_end = greatest(v_new_end, now()),
                    status = CASE WHEN v_new_end <= now() THEN 'ended' ELSE s.status END,
                    updated_at = now()
                WHERE s.id = v_subscription
                RETURNING s.status = 'ended' INTO v_ended;
                v_reply := p_replies ->> CASE WHEN v_ended THEN 'refund_ended' ELSE 'refund_shortened' END;
            END IF;
        END IF;
    END IF;

    -- 5. Record the outcome (processed_at stamped just before COMMIT), the webhook_log row's final
    -- status, and queue the bot's reply.
    UPDATE inbox SET outcome = o_outcome, processed_at = clock_timestamp() WHERE message_key = p_key;
    UPDATE webhook_log
    SET status = CASE o_outcome WHEN 'applied' THEN 'SUCCESS' WHEN 'ignored' THEN 'IGNORED' ELSE 'FAILED' END,
        error = o_note, processed_at = clock_timestamp()
    WHERE id = p_log;
    IF v_reply IS NOT NULL AND v_payment.chat_id IS NOT NULL THEN
        INSERT INTO outbox (message_key, chat_id, method, payload)
        VALUES (p_key, v_payment.chat_id, 'sendMessage',
                jsonb_build_object('chat_id', v_payment.chat_id, 'text', v_reply));
    END IF;
END;
$$;
