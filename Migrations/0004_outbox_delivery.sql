-- 0004: outbox delivery — what `leasehold notifier` needs to send bot replies exactly once, as far
-- as the Bot API allows, at Telegram's rate limits, from several notifier processes at once.
--
-- (0003 is left to the payments migration; the migrator applies files in version order and
-- does not mind gaps.)
--
-- Row life cycle:
--
--   pending ──claim──▶ sending ──2xx──────────────▶ sent     (telegram_message_id, sent_at)
--      ▲                  │ ──400/403/other 4xx────▶ failed   (last_error: Telegram's reason)
--      │                  │ ──5xx/network, attempts left: next_attempt_at = now() + backoff
--      └──────────────────┤ ──429: next_attempt_at = now() + retry_after (and the whole bot pauses)
--                         └── claim older than the claim timeout (its notifier died): back to pending
--
-- The claim is its own short transaction (status 'sending', claimed_by, claimed_at) committed
-- BEFORE the HTTP call, and the result is recorded in another short transaction right after it.
-- A crash between Telegram accepting the call and that second commit is the only way a reply is
-- sent twice (README: "Bot replies").

ALTER TABLE outbox
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),  -- not claimed before this
    ADD COLUMN claimed_by      text,                                -- <notifier name>#<claim number>
    ADD COLUMN claimed_at      timestamptz,                         -- when the last attempt was claimed
    ADD COLUMN failed_at       timestamptz;

ALTER TABLE outbox DROP CONSTRAINT outbox_status_known;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_known CHECK (status IN ('pending', 'sending', 'sent', 'failed'));
ALTER TABLE outbox ADD CONSTRAINT outbox_claimed_when_sending CHECK (status <> 'sending' OR claimed_at IS NOT NULL);

-- Claiming, per-chat order and rate limits (all in the claim transaction):
-- the oldest deliverable row of each chat whose earlier rows are all done;
CREATE INDEX outbox_open_by_chat ON outbox (chat_id, id) WHERE status IN ('pending', 'sending');
-- "did this chat get a message in the last second" and "how many messages did the bot send in the
-- last second" (claims are kept after sending: claimed_at is when the last attempt started; rows
-- never claimed are left out, so the booking transaction's insert does not pay for these);
CREATE INDEX outbox_claimed_by_chat ON outbox (chat_id, claimed_at) WHERE claimed_at IS NOT NULL;
CREATE INDEX outbox_claimed_at ON outbox (claimed_at) WHERE claimed_at IS NOT NULL;
-- stale claims of dead notifiers;
CREATE INDEX outbox_sending ON outbox (claimed_at) WHERE status = 'sending';
-- and the failed rows an operator looks at (few, so a partial index is cheap).
CREATE INDEX outbox_failed ON outbox (failed_at) WHERE status = 'failed';

-- One row: until when the whole bot is paused because Telegram answered 429 Too Many Requests
-- (`parameters.retry_after`). Shared by every notifier, so one 429 pauses all of them.
CREATE TABLE outbox_throttle (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    paused_until timestamptz NOT NULL DEFAULT '-infinity',
    reason       text
);
INSERT INTO outbox_throttle (id) VALUES (true);
