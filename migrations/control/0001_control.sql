-- zaptec-sync control database, version 1: what consumers may ask of the daemon (CONTRACT §10). A file of its
-- own (ZAPTEC_CONTROL_DB), attached by the daemon as `control`, so that the main database can be read-only to
-- every consumer and only those who may write this file can ask for anything.

-- Moved here from the main database (its schema version 7): a lookup of one charger, or the whole inventory.
CREATE TABLE refresh_requests (
  id           INTEGER PRIMARY KEY,
  charger      TEXT,                            -- id, serial, or NULL for the whole inventory
  requested_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  handled_at   TEXT,
  outcome      TEXT CHECK (outcome IN ('found', 'not_found', 'refreshed', 'deferred', 'failed')),
  detail       TEXT
);
CREATE INDEX refresh_requests_open ON refresh_requests (id) WHERE handled_at IS NULL;

-- Commands for the daemon to send: a charger command, or an installation's available current.
CREATE TABLE commands (
  id           INTEGER PRIMARY KEY,
  target       TEXT NOT NULL,                   -- charger id or serial; installation id for available_current
  action       TEXT NOT NULL,                   -- pause, resume, restart, deauthorize, available_current
  value        TEXT,                            -- available_current: amperes, one number or three comma-separated
  requested_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  requested_by TEXT,
  status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'done')),
  sent_at      TEXT,
  finished_at  TEXT,
  outcome      TEXT CHECK (outcome IN ('confirmed', 'unconfirmed', 'unnecessary', 'superseded', 'rejected',
                                       'failed', 'refused', 'not_found')),
  detail       TEXT
);
CREATE INDEX commands_open ON commands (id) WHERE status <> 'done';
