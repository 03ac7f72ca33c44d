-- zaptec-sync schema version 2: the API budget, persisted so that restarts cannot exceed Zaptec's limits.

-- One row per request admitted, written before the request is sent (a crash over-counts, never under-counts).
CREATE TABLE api_requests (
  id        INTEGER PRIMARY KEY,
  grp       TEXT NOT NULL,                    -- endpoint group: global, lists, auth, ...
  at_ms     INTEGER NOT NULL,                 -- admission time, epoch milliseconds
  method    TEXT NOT NULL,
  path      TEXT NOT NULL,                    -- path with ids replaced, never a query string or a secret
  status    INTEGER,                          -- HTTP status once answered; NULL if none came
  outcome   TEXT                              -- ok, http_error, rate_limited, network_error, ...
);
CREATE INDEX api_requests_grp_at ON api_requests (grp, at_ms);

-- A group that may not send until a time: a 429's wait, or a spent sliding window.
CREATE TABLE api_blocks (
  grp              TEXT PRIMARY KEY,
  blocked_until_ms INTEGER NOT NULL,
  source           TEXT NOT NULL,              -- which rule set it (retry-after, second-429, ...)
  detail           TEXT
);

-- The windows the daemon enforces, written at start so that `status` can show used vs. limit.
CREATE TABLE api_windows (
  grp            TEXT NOT NULL,
  window_seconds REAL NOT NULL,
  kind           TEXT NOT NULL CHECK (kind IN ('sliding', 'bucket')),
  "limit"        INTEGER NOT NULL,
  PRIMARY KEY (grp, window_seconds, kind)
);

-- When each charger's state was last read, so the 15 s rule holds across restarts.
CREATE TABLE state_reads (
  charger_id TEXT PRIMARY KEY,
  read_at_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Public: the budget per group and window, as `status` reports it (used = requests in the last window).
CREATE VIEW api_budget AS
SELECT w.grp AS "group", w.window_seconds, w.kind, w."limit",
       (SELECT count(*) FROM api_requests r
         WHERE r.grp = w.grp
           AND r.at_ms > CAST(strftime('%s', 'now') AS INTEGER) * 1000 - CAST(w.window_seconds * 1000 AS INTEGER)) AS used,
       (SELECT b.blocked_until_ms FROM api_blocks b WHERE b.grp = w.grp) AS blocked_until_ms
FROM api_windows w;
