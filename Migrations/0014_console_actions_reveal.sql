-- 0014: showing a dead letter's payload unredacted (the console's Reveal) is recorded beside
-- replays, purges and pauses: who, when, which letter and why. It changes nothing.
ALTER TABLE console_actions DROP CONSTRAINT console_actions_action_known;
ALTER TABLE console_actions ADD CONSTRAINT console_actions_action_known
    CHECK (action IN ('replay', 'purge', 'pause', 'resume', 'reveal'));
