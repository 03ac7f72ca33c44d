-- zaptec-sync schema version 3: what the running daemon finds wrong, for `status` (CONTRACT §7).

-- One row per lasting condition (refused credentials, a failing background pass), one plain-word sentence
-- each; rewritten with the heartbeat, emptied when the daemon starts.
CREATE TABLE daemon_problems (
  key      TEXT PRIMARY KEY,                   -- credentials, inventory, state, live-events, refresh-requests, ...
  sentence TEXT NOT NULL,                      -- for people: what is wrong and what the daemon does about it
  since    TEXT NOT NULL                       -- when it started, ISO-8601 UTC
);
