-- 0002: dead letters — messages that can never succeed, kept for people to inspect and replay.
--
-- A message is dead-lettered when it cannot be decoded, has an unknown kind, or failed its
-- retry policy's maximum attempts. The row is inserted (idempotently: one row per stream entry)
-- BEFORE the entry is acknowledged in Redis, so a crash in between loses nothing and the retry of
-- the insert duplicates nothing.

CREATE TABLE dead_letters (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_key      text NOT NULL,                 -- the dedupe key, e.g. yk:payment.succeeded:<id>
    stream           text NOT NULL,                 -- where it came from, and where replay sends it
    entry_id         text NOT NULL,                 -- the stream entry that was dead-lettered
    kind             text NOT NULL,
    payload          bytea NOT NULL,                -- exactly as received (may not even be UTF-8)
    attempts         integer NOT NULL,
    last_error       text NOT NULL,
    error_history    jsonb NOT NULL DEFAULT '[]',   -- [{"at": …, "attempt": n, "error": "…"}, …]
    first_seen_at    timestamptz NOT NULL,          -- when ingress accepted it (enqueued_at)
    dead_lettered_at timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL DEFAULT 'dead',
    replayed_at      timestamptz,
    replay_entry_id  text,                          -- the new stream entry a replay created
    purged_at        timestamptz,
    CONSTRAINT dead_letters_status_known CHECK (status IN ('dead', 'replayed', 'purged')),
    CONSTRAINT dead_letters_one_per_entry UNIQUE (stream, entry_id)
);
CREATE INDEX dead_letters_by_status ON dead_letters (status, dead_lettered_at);
CREATE INDEX dead_letters_by_key ON dead_letters (message_key);
