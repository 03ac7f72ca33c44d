-- zaptec-sync schema version 1: the public objects of CONTRACT §3.
-- Timestamps are TEXT, ISO-8601 UTC with milliseconds and Z. Booleans are INTEGER 0/1.

CREATE TABLE installations (
  id            TEXT PRIMARY KEY,
  name          TEXT,
  active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  data          TEXT NOT NULL,                 -- the API's InstallationModel, as JSON
  first_seen_at TEXT NOT NULL,
  last_seen_at  TEXT NOT NULL,
  removed_at    TEXT
);

CREATE TABLE circuits (
  id              TEXT PRIMARY KEY,
  installation_id TEXT NOT NULL,
  name            TEXT,
  max_current     REAL,                         -- A
  active          INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  data            TEXT NOT NULL,
  first_seen_at   TEXT NOT NULL,
  last_seen_at    TEXT NOT NULL,
  removed_at      TEXT
);
CREATE INDEX circuits_installation ON circuits (installation_id);

CREATE TABLE chargers (
  id              TEXT PRIMARY KEY,
  installation_id TEXT,
  circuit_id      TEXT,
  device_id       TEXT,                         -- the serial, e.g. ZAP049387
  name            TEXT,
  device_type     INTEGER,
  active          INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  data            TEXT NOT NULL,                -- the last charger object the API returned, as JSON
  first_seen_at   TEXT NOT NULL,
  last_seen_at    TEXT NOT NULL,
  removed_at      TEXT
);
CREATE INDEX chargers_device_id ON chargers (device_id COLLATE NOCASE);
CREATE INDEX chargers_installation ON chargers (installation_id);

CREATE TABLE charger_state (
  charger_id  TEXT NOT NULL,
  state_id    INTEGER NOT NULL,
  state_name  TEXT,
  value       TEXT,
  observed_at TEXT NOT NULL,
  received_at TEXT NOT NULL,
  source      TEXT NOT NULL CHECK (source IN ('event', 'poll')),
  PRIMARY KEY (charger_id, state_id)
) WITHOUT ROWID;

CREATE TABLE charger_state_history (
  charger_id  TEXT NOT NULL,
  state_id    INTEGER NOT NULL,
  value       TEXT,
  observed_at TEXT NOT NULL,
  received_at TEXT NOT NULL,
  source      TEXT NOT NULL CHECK (source IN ('event', 'poll')),
  -- Time first: rows arrive roughly in time order, so inserts append instead of touching a page per
  -- charger (2-3x the ingest rate), and pruning and time-range queries use the key directly.
  PRIMARY KEY (observed_at, charger_id, state_id)
) WITHOUT ROWID;

-- Names of state ids from /api/constants: device_type -1 holds the global Observations map,
-- other rows the Schema.<Name>.ObservationIds of that device type.
CREATE TABLE state_names (
  device_type INTEGER NOT NULL,
  state_id    INTEGER NOT NULL,
  name        TEXT NOT NULL,
  PRIMARY KEY (device_type, state_id)
) WITHOUT ROWID;

CREATE TABLE refresh_requests (
  id           INTEGER PRIMARY KEY,
  charger      TEXT,                            -- id, serial, or NULL for the whole inventory
  requested_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  handled_at   TEXT,
  outcome      TEXT CHECK (outcome IN ('found', 'not_found', 'refreshed', 'deferred', 'failed')),
  detail       TEXT
);
CREATE INDEX refresh_requests_open ON refresh_requests (id) WHERE handled_at IS NULL;

CREATE TABLE sync_status (
  installation_id TEXT PRIMARY KEY,
  events          TEXT NOT NULL DEFAULT 'connecting' CHECK (events IN ('connected', 'connecting', 'off', 'failed')),
  last_event_at   TEXT,
  last_poll_at    TEXT,
  detail          TEXT
);

CREATE TABLE daemon (
  id                     INTEGER PRIMARY KEY CHECK (id = 1),
  version                TEXT NOT NULL,
  pid                    INTEGER,
  started_at             TEXT,
  heartbeat_at           TEXT,
  stopped_at             TEXT,
  inventory_refreshed_at TEXT,
  next_inventory_at      TEXT,
  constants_refreshed_at TEXT,
  schema_version         INTEGER NOT NULL
);

-- Global observation names, so state_name is filled before the first /api/constants call
-- (zaptec-api.md §4; replaced by the API's own list when it is read).
INSERT INTO state_names (device_type, state_id, name) VALUES
  (-1, -3, 'IsOcppConnected'), (-1, -2, 'IsOnline'), (-1, -1, 'Pulse'), (-1, 100, 'Capabilities'),
  (-1, 120, 'AuthenticationRequired'), (-1, 150, 'CommunicationMode'), (-1, 151, 'PermanentCableLock'),
  (-1, 201, 'TemperatureInternal5'), (-1, 270, 'Humidity'),
  (-1, 501, 'VoltagePhase1'), (-1, 502, 'VoltagePhase2'), (-1, 503, 'VoltagePhase3'),
  (-1, 507, 'CurrentPhase1'), (-1, 508, 'CurrentPhase2'), (-1, 509, 'CurrentPhase3'),
  (-1, 510, 'ChargerMaxCurrent'), (-1, 511, 'ChargerMinCurrent'), (-1, 512, 'ActivePhases'),
  (-1, 513, 'TotalChargePower'), (-1, 519, 'SetPhases'), (-1, 520, 'MaxPhases'),
  (-1, 522, 'ChargerOfflinePhase'), (-1, 523, 'ChargerOfflineCurrent'), (-1, 553, 'TotalChargePowerSession'),
  (-1, 554, 'SignedMeterValue'), (-1, 555, 'SignedMeterValueInterval'), (-1, 702, 'ChargeMode'),
  (-1, 708, 'ChargeCurrentSet'), (-1, 710, 'ChargerOperationMode'), (-1, 711, 'IsEnabled'),
  (-1, 712, 'IsStandAlone'), (-1, 714, 'CableType'), (-1, 715, 'NetworkType'), (-1, 716, 'DetectedCar'),
  (-1, 718, 'FinalStopActive'), (-1, 721, 'SessionIdentifier'), (-1, 722, 'ChargerCurrentUserUuid'),
  (-1, 723, 'CompletedSession'), (-1, 760, 'Location'), (-1, 761, 'TimeZone'), (-1, 763, 'NextScheduleEvent'),
  (-1, 800, 'InstallationId'), (-1, 804, 'Warnings'), (-1, 808, 'DiagnosticsString'),
  (-1, 809, 'CommunicationSignalStrength'), (-1, 810, 'CloudConnectionStatus'),
  (-1, 908, 'SmartMainboardSoftwareApplicationVersion'), (-1, 911, 'SmartComputerSoftwareApplicationVersion');

-- A convenience for consumers: each charger's current state with its serial and name.
CREATE VIEW charger_state_current AS
SELECT s.charger_id, c.device_id, c.name AS charger_name, c.installation_id, s.state_id, s.state_name,
       s.value, s.observed_at, s.received_at, s.source
FROM charger_state s LEFT JOIN chargers c ON c.id = s.charger_id;
