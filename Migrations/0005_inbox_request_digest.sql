-- The inbox remembers what each key asked for and what it produced, not only the outcome:
--
-- request_digest  SHA-256 of the request's canonical form (action and ids). A later message
--                 under the same key with a different digest is a reused idempotency key, not a
--                 retry: it gets the outcome `request_id_reused` and changes nothing. NULL for rows
--                 written before this migration (no comparison is possible for those).
-- interview_id    the interview the first delivery booked, moved or cancelled, so a duplicate
--                 delivery republishes the whole outcome instead of one without it.
ALTER TABLE inbox
    ADD COLUMN request_digest bytea,
    ADD COLUMN interview_id bigint;
