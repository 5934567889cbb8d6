-- `leasehold_book` again (0007 has the whole contract: arguments, lock order, outcome), with one
-- change that matters under contention: a booking whose answer is not `booked` no longer holds the
-- slot's row lock through its COMMIT.
--
-- Before, twenty requests for one slot in a row queued on the slot's row lock one after another,
-- and each held it until its COMMIT had flushed the WAL — one WAL flush per request per slot, in
-- series (a few milliseconds each on an ordinary disk), however many workers there were. Now:
--
--   * a slot whose booking is already committed is answered `slot_taken` from a plain read,
--     without waiting for its lock (a valid answer: the booking committed before this statement
--     began);
--   * a slot that looks free is locked (`SELECT … FOR UPDATE`) inside a subtransaction and
--     re-checked under the lock; when the answer is not `booked` (taken meanwhile, closed, or the
--     user already has an interview) the subtransaction is rolled back, which releases the lock at
--     once (PostgreSQL releases locks taken after a savepoint when it is rolled back to); only a
--     booking keeps it, until its COMMIT, so no second booking of the slot can decide before the
--     first is committed — the double-booking guarantee is unchanged.
--
-- The requests that queued behind a booking then decide one after another in microseconds and
-- commit side by side, their WAL flushes shared (group commit) instead of taken in turn.

CREATE OR REPLACE FUNCTION leasehold_book(
    p_key text, p_action text, p_user bigint, p_slot bigint, p_interview bigint, p_chat bigint,
    p_request text, p_stream text, p_entry text, p_one_per_user boolean, p_create_users boolean,
    p_replies jsonb,
    OUT o_outcome text, OUT o_interview_id bigint, OUT o_duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_digest bytea := sha256(convert_to(p_request, 'UTF8'));
    v_recorded_outcome text;
    v_recorded_interview bigint;
    v_reused boolean;
    v_chat bigint;
    v_open boolean;
    v_taken boolean;
    v_existing bigint;
    v_slot record;
    v_target_found boolean := false;
    v_target_open boolean := false;
    v_current_slot bigint;
    v_owner bigint;
    v_active boolean;
    v_locked_slot bigint;
    v_locked_active boolean;
BEGIN
    o_duplicate := false;

    -- 1. Inbox.
    INSERT INTO inbox (message_key, kind, outcome, stream, entry_id, request_digest)
    VALUES (p_key, 'booking', 'pending', p_stream, p_entry, v_digest)
    ON CONFLICT (message_key) DO NOTHING;
    IF NOT FOUND THEN
        SELECT i.outcome, i.interview_id, i.request_digest IS NOT NULL AND i.request_digest <> v_digest
        INTO v_recorded_outcome, v_recorded_interview, v_reused
        FROM inbox i WHERE i.message_key = p_key;
        o_duplicate := true;
        IF v_reused THEN
            o_outcome := 'request_id_reused';
        ELSE
            o_outcome := v_recorded_outcome;
            o_interview_id := v_recorded_interview;
        END IF;
        RETURN;
    END IF;

    -- 2. The user.
    IF p_chat IS NOT NULL AND p_create_users THEN
        INSERT INTO users (id, telegram_chat_id) VALUES (p_user, p_chat) ON CONFLICT (id) DO NOTHING;
    END IF;
    SELECT u.telegram_chat_id INTO v_chat FROM users u WHERE u.id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'rejected';
        v_chat := NULL;
    ELSE
        v_chat := coalesce(p_chat, v_chat);

        IF p_action = 'book' THEN
            IF p_slot IS NULL THEN
                o_outcome := 'rejected';
            ELSE
                -- 3. The slot. A slot already booked (committed) is answered at once, without
                -- queueing on its lock.
                SELECT s.is_open, EXISTS (
                    SELECT 1 FROM interviews i WHERE i.time_slot_id = p_slot AND i.status = 'active')
                INTO v_open, v_taken
                FROM time_slots s WHERE s.id = p_slot;
                IF NOT FOUND THEN
                    o_outcome := 'unknown_slot';
                ELSIF NOT v_open THEN
                    o_outcome := 'rejected';
                ELSIF v_taken THEN
                    o_outcome := 'slot_taken';
                ELSE
                    -- It looked free: lock it and decide under the lock. The lock is taken inside a
                    -- subtransaction (the block with an EXCEPTION clause), so that when the answer is
                    -- not `booked` the block ends by raising, which rolls the subtransaction back and
                    -- releases the slot's row lock there and then; only a booking keeps the lock
                    -- until its COMMIT. So the requests that queued behind a booking each hold the
                    -- lock only for their check, not through their own COMMIT's WAL flush.
                    BEGIN
                        SELECT s.is_open INTO v_open FROM time_slots s WHERE s.id = p_slot FOR UPDATE;
                        IF NOT v_open THEN
                            o_outcome := 'rejected';
                        ELSIF EXISTS (
                            SELECT 1 FROM interviews i WHERE i.time_slot_id = p_slot AND i.status = 'active') THEN
                            o_outcome := 'slot_taken';
                        ELSIF p_one_per_user THEN
                            SELECT i.id INTO v_existing
                            FROM interviews i WHERE i.user_id = p_user AND i.status = 'active' LIMIT 1;
                            IF FOUND THEN
                                o_outcome := 'already_booked';
                                o_interview_id := v_existing;
                            END IF;
                        END IF;
                        IF o_outcome IS NOT NULL THEN
                            -- Not booked: give the slot's lock back now (PL/pgSQL variables keep
                            -- their values across the rollback).
                            RAISE SQLSTATE 'LH001';
                        END IF;
                        INSERT INTO interviews (user_id, time_slot_id, message_key)
                        VALUES (p_user, p_slot, p_key) RETURNING id INTO o_interview_id;
                        o_outcome := 'booked';
                    EXCEPTION WHEN SQLSTATE 'LH001' THEN
                        NULL;
                    END;
                END IF;
            END IF;

        ELSIF p_action IN ('cancel', 'reschedule') THEN
            o_interview_id := p_interview;
            -- The interview's slot and owner, read before locking its slot (the user's row lock,
            -- held, keeps them from changing under us).
            SELECT i.time_slot_id, i.user_id, i.status = 'active'
            INTO v_current_slot, v_owner, v_active
            FROM interviews i WHERE i.id = p_interview;
            IF p_interview IS NULL OR v_current_slot IS NULL OR v_owner <> p_user OR NOT v_active
                OR (p_action = 'reschedule' AND p_slot IS NULL) THEN
                o_outcome := 'rejected';
            ELSE
                -- 3. The slots involved, ascending.
                FOR v_slot IN
                    SELECT s.id, s.is_open FROM time_slots s
                    WHERE s.id = ANY (ARRAY[v_current_slot, coalesce(p_slot, v_current_slot)])
                    ORDER BY s.id FOR UPDATE
                LOOP
                    IF v_slot.id = p_slot THEN
                        v_target_found := true;
                        v_target_open := v_slot.is_open;
                    END IF;
                END LOOP;
                -- 4. The interview, and it must not have moved meanwhile.
                SELECT i.time_slot_id, i.status = 'active' INTO v_locked_slot, v_locked_active
                FROM interviews i WHERE i.id = p_interview FOR UPDATE;
                IF NOT FOUND OR v_locked_slot <> v_current_slot OR NOT v_locked_active THEN
                    o_outcome := 'rejected';
                ELSIF p_action = 'cancel' THEN
                    UPDATE interviews SET status = 'cancelled', ended_at = now() WHERE id = p_interview;
                    o_outcome := 'cancelled';
                ELSIF NOT v_target_found THEN
                    o_outcome := 'unknown_slot';
                ELSIF NOT v_target_open OR p_slot = v_current_slot THEN
                    o_outcome := 'rejected';
                ELSIF EXISTS (SELECT 1 FROM interviews i WHERE i.time_slot_id = p_slot AND i.status = 'active') THEN
                    o_outcome := 'slot_taken';
                ELSE
                    UPDATE interviews SET status = 'rescheduled', ended_at = now() WHERE id = p_interview;
                    INSERT INTO interviews (user_id, time_slot_id, message_key)
                    VALUES (p_user, p_slot, p_key) RETURNING id INTO o_interview_id;
                    o_outcome := 'rescheduled';
                END IF;
            END IF;

        ELSE
            o_outcome := 'rejected';
        END IF;
    END IF;

    -- Record the outcome (processed_at stamped here, just before COMMIT, so it measures accepted
    -- → committed) and queue the bot's reply.
    UPDATE inbox
    SET outcome = o_outcome, interview_id = o_interview_id, processed_at = clock_timestamp()
    WHERE message_key = p_key;
    IF v_chat IS NOT NULL THEN
        INSERT INTO outbox (message_key, chat_id, method, payload)
        VALUES (p_key, v_chat, 'sendMessage',
                jsonb_build_object('chat_id', v_chat, 'text', coalesce(p_replies ->> o_outcome, o_outcome)));
    END IF;
END;
$$;
