-- The booking transaction as one function: one round trip from the worker instead of one per
-- statement, with every statement's plan cached for the connection's lifetime (PL/pgSQL prepares
-- each statement once per session), and the slot's row lock held only while the function runs
-- inside the server, not across network round trips.
--
-- It takes the same locks in the same order as before, and the order is the law that keeps two
-- bookings from deadlocking (two reverse reschedules A→B and B→A lock {A, B} in the same order):
--
--   1. inbox row (INSERT … ON CONFLICT DO NOTHING: a key seen before returns its recorded outcome
--      and interview, or `request_id_reused` when the request's digest differs; nothing changes)
--   2. the user row, FOR UPDATE (created first for a Telegram user on first contact)
--   3. the slot rows involved, by ascending id, FOR UPDATE: the fix of the double booking (a second
--      booking of the slot waits here, then sees the first's interview and answers slot_taken)
--   4. the interview row, FOR UPDATE (cancel, reschedule), re-checked after its slot is locked
--
-- then the interview change, the inbox outcome, and an outbox row with the bot's reply when the
-- user has a chat. The partial unique index interviews_one_active_per_slot stays as the last line
-- of defence and is never hit.
--
-- Arguments: the message key; action (book | cancel | reschedule); user; slot (book, reschedule);
-- interview (cancel, reschedule); chat (Telegram: where the reply goes, and whether to create the
-- user); the request's canonical form (its SHA-256 is the digest); stream and entry id (for the
-- record); whether one active interview per user is enforced; whether unknown Telegram users are
-- created; the bot's reply text for each outcome, as a JSON object.
CREATE FUNCTION leasehold_book(
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
                -- 3. The slot.
                SELECT s.is_open INTO v_open FROM time_slots s WHERE s.id = p_slot FOR UPDATE;
                IF NOT FOUND THEN
                    o_outcome := 'unknown_slot';
                ELSIF NOT v_open THEN
                    o_outcome := 'rejected';
                ELSIF EXISTS (SELECT 1 FROM interviews i WHERE i.time_slot_id = p_slot AND i.status = 'active') THEN
                    o_outcome := 'slot_taken';
                ELSE
                    IF p_one_per_user THEN
                        SELECT i.id INTO v_existing
                        FROM interviews i WHERE i.user_id = p_user AND i.status = 'active' LIMIT 1;
                        IF FOUND THEN
                            o_outcome := 'already_booked';
                            o_interview_id := v_existing;
                        END IF;
                    END IF;
                    IF o_outcome IS NULL THEN
                        INSERT INTO interviews (user_id, time_slot_id, message_key)
                        VALUES (p_user, p_slot, p_key) RETURNING id INTO o_interview_id;
                        o_outcome := 'booked';
                    END IF;
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
