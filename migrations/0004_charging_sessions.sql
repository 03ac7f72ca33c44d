-- zaptec-sync schema version 4: completed charging sessions for billing (CONTRACT §8).

-- One row per session, whichever sources delivered it (the 723 CompletedSession from the bus or a state read,
-- and GET /api/chargehistory). Fields one source lacks are filled from the other; replays change nothing.
CREATE TABLE charging_sessions (
  id                  TEXT PRIMARY KEY,        -- Zaptec's session id, lower case
  charger_id          TEXT NOT NULL,           -- lower case
  installation_id     TEXT,                    -- lower case, when known
  device_id           TEXT,                    -- the charger's serial (ZAP…, ZPR…), when known
  started_at          TEXT,                    -- ISO-8601 UTC
  ended_at            TEXT,                    -- ISO-8601 UTC
  energy_kwh          REAL,                    -- as Zaptec reports it
  authentication_code TEXT,                    -- 723 AuthenticationCode: nfc-<uid>, ble-<guid>, '' when none
  token_name          TEXT,                    -- charge history TokenName
  user_id             TEXT,                    -- charge history UserId (a Zaptec id, not personal data by itself)
  stopped_by_rfid     INTEGER,                 -- 0/1
  reliable_clock      INTEGER,                 -- 0/1
  externally_ended    INTEGER,                 -- 0/1 (charge history, OCPP installations)
  commit_metadata     INTEGER,                 -- charge history CommitMetadata flags (16 = Signed)
  ocmf                TEXT,                    -- SignedSession byte for byte as received; NULL when absent or empty
  ocmf_signed         INTEGER NOT NULL DEFAULT 0, -- 1 when the OCMF has a signature section
  signature_valid     INTEGER,                 -- 1 verifies against the charger's 981 MIDPublicKey, 0 does not, NULL nothing to verify
  meter_start_kwh     REAL,                    -- OCMF reading TX B
  meter_end_kwh       REAL,                    -- OCMF reading TX E
  source              TEXT NOT NULL CHECK (source IN ('event', 'poll', 'history')), -- the first source
  first_seen_at       TEXT NOT NULL,           -- ISO-8601 UTC
  updated_at          TEXT NOT NULL,           -- ISO-8601 UTC, last change
  data                TEXT,                    -- the last source object as JSON (no personal data unless allowed)
  user_full_name      TEXT,                    -- only with ZAPTEC_SESSIONS_PERSONAL_DATA=on
  user_email          TEXT,                    -- only with ZAPTEC_SESSIONS_PERSONAL_DATA=on
  data_source         TEXT                     -- internal: which source `data` came from (history outranks a 723)
);
CREATE INDEX charging_sessions_ended ON charging_sessions (ended_at);
CREATE INDEX charging_sessions_charger ON charging_sessions (charger_id, ended_at);
CREATE INDEX charging_sessions_installation ON charging_sessions (installation_id, ended_at);

-- Per-interval energy (charge history EnergyDetails: deltas, not running totals).
CREATE TABLE charging_session_energy (
  session_id TEXT NOT NULL REFERENCES charging_sessions (id) ON DELETE CASCADE,
  at         TEXT NOT NULL,                    -- the interval's Timestamp, ISO-8601 UTC
  energy_kwh REAL NOT NULL,
  PRIMARY KEY (session_id, at)
) WITHOUT ROWID;

-- Charge-history passes per installation: where the next one starts, and when it is due.
CREATE TABLE charge_history_passes (
  installation_id TEXT PRIMARY KEY,
  last_read_at    TEXT NOT NULL,               -- when the last pass completed, ISO-8601 UTC
  read_until      TEXT NOT NULL                -- the `To` of the last completed pass
);
