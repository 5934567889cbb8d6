-- 0012: whom a dead letter concerns — the user and the Telegram chat — so that an on-call person
-- asked about one user finds that user's letters (`leasehold dlq list --user`, `--chat`, and the
-- console's filter), not only by kind, stream, time and error text.
--
-- The payload is kept exactly as received (bytea, possibly not even UTF-8 or JSON), so the subject
-- is read from it once, when the row is inserted, by leasehold_dead_letter_subject(): for a
-- `booking` its `user_id` and `chat_id`; for a `yookassa.notification` the user of the payment it
-- names (`object.payment_id` for a refund, else `object.id`) from `payments`, and no chat. Anything
-- it cannot read (not UTF-8, not JSON, a number out of range, an unknown payment) leaves NULL: the
-- insert never fails because of a payload. A trigger fills the columns, so every writer
-- (worker, supervisor, replays of old rows) gets them without code of its own; rows written before
-- this migration are filled below by the same function.

ALTER TABLE dead_letters ADD COLUMN user_id bigint, ADD COLUMN chat_id bigint;

CREATE FUNCTION leasehold_dead_letter_subject(kind text, payload bytea, OUT user_id bigint, OUT chat_id bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    body jsonb;
    payment text;
BEGIN
    BEGIN
        body := convert_from(payload, 'UTF8')::jsonb;
        IF jsonb_typeof(body) <> 'object' THEN
            RETURN;
        END IF;
        IF kind = 'yookassa.notification' THEN
            payment := coalesce(body #>> '{object,payment_id}', body #>> '{object,id}');
            SELECT p.user_id INTO user_id FROM payments p WHERE p.provider_payment_id = payment;
        ELSE
            IF jsonb_typeof(body -> 'user_id') = 'number' THEN
                user_id := (body ->> 'user_id')::bigint;
            END IF;
            IF jsonb_typeof(body -> 'chat_id') = 'number' THEN
                chat_id := (body ->> 'chat_id')::bigint;
            END IF;
        END IF;
    EXCEPTION WHEN others THEN
        -- Not UTF-8, not JSON, or a number that is no bigint: nobody to name.
        user_id := NULL;
        chat_id := NULL;
    END;
END;
$$;

CREATE FUNCTION leasehold_dead_letters_fill_subject() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_id IS NULL AND NEW.chat_id IS NULL THEN
        SELECT s.user_id, s.chat_id INTO NEW.user_id, NEW.chat_id
        FROM leasehold_dead_letter_subject(NEW.kind, NEW.payload) s;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER dead_letters_fill_subject BEFORE INSERT ON dead_letters
    FOR EACH ROW EXECUTE FUNCTION leasehold_dead_letters_fill_subject();

UPDATE dead_letters d SET user_id = s.user_id, chat_id = s.chat_id
FROM dead_letters d2 CROSS JOIN LATERAL leasehold_dead_letter_subject(d2.kind, d2.payload) s
WHERE d.id = d2.id AND (s.user_id IS NOT NULL OR s.chat_id IS NOT NULL);

CREATE INDEX dead_letters_by_user ON dead_letters (user_id, dead_lettered_at) WHERE user_id IS NOT NULL;
CREATE INDEX dead_letters_by_chat ON dead_letters (chat_id, dead_lettered_at) WHERE chat_id IS NOT NULL;
