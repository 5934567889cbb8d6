-- 0011: a key per delivery on webhook_log, so recording a notification can be repeated.
--
-- The worker commits a notification's RECEIVED row on its own, before its transaction. When the
-- connection is lost after that INSERT reached the server, the worker cannot know whether it
-- committed, and it tries again (it waits out what looks like an outage). Without a key the second
-- try wrote a second row, and the first stayed RECEIVED forever. Now the worker picks a key for the
-- delivery before its first try and sends the same key on every try: the insert is
-- ON CONFLICT (delivery_key) DO NOTHING and the statement returns the row already there.
--
-- NULL for the rows written before this migration and by callers that give no key (NULLs never
-- conflict).
ALTER TABLE webhook_log ADD COLUMN delivery_key text;
CREATE UNIQUE INDEX webhook_log_by_delivery_key ON webhook_log (delivery_key);
