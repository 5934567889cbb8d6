-- 0013: pausing and resuming a stream is recorded beside replays and purges: who, when, what and
-- why (`leasehold streams pause|resume`). Their scope names the sources and the reason; they change
-- no dead letter.
ALTER TABLE console_actions DROP CONSTRAINT console_actions_action_known;
ALTER TABLE console_actions ADD CONSTRAINT console_actions_action_known
    CHECK (action IN ('replay', 'purge', 'pause', 'resume'));
