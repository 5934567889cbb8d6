-- 0010: what operators did from the ops console (`leasehold console`): who replayed or purged
-- which dead letters, and when. Rows are only ever inserted; the console lists them on its
-- overview and on each dead letter's page.
CREATE TABLE console_actions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,                    -- the name the operator logged in with
    action          text NOT NULL,                    -- replay, purge
    scope           text NOT NULL,                    -- "ids 3, 4" or the filter of an "all matching"
    dead_letter_ids bigint[] NOT NULL DEFAULT '{}',   -- the letters the action changed
    CONSTRAINT console_actions_action_known CHECK (action IN ('replay', 'purge'))
);
CREATE INDEX console_actions_by_time ON console_actions (at DESC);
CREATE INDEX console_actions_by_letter ON console_actions USING gin (dead_letter_ids);
