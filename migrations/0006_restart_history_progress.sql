-- zaptec-sync schema version 6: charge history after any restart (CONTRACT §7), the progress of long work, what
-- state values mean, and reconciliation spaced by what it reveals.

-- When the installation's last pass after a restart or a live-event gap began: such passes run at most once per
-- 15 minutes per installation, counted across restarts (a daemon restarted in a loop reads each history once).
ALTER TABLE charge_history_passes ADD COLUMN gap_read_at TEXT;

-- Long work under way (the first start's state pass, the charge-history backfill): "n of N, about M minutes
-- left", rewritten with the heartbeat; NULL when there is none. `status` shows it.
ALTER TABLE daemon ADD COLUMN progress TEXT;

-- What a state's value means, where /api/constants has a map for it (710 ChargerOperationMode from
-- ChargerOperationModes, 715 NetworkType from NetworkTypes): `zaptec-sync state` shows it beside the value.
-- Rewritten with the state names on every /api/constants pass; seeded here so it is there before the first.
CREATE TABLE state_values (
  state_id INTEGER NOT NULL,
  value    TEXT NOT NULL,                      -- the value as charger_state.value holds it
  meaning  TEXT NOT NULL,                      -- the constant's name, e.g. Connected_Charging
  PRIMARY KEY (state_id, value)
);
INSERT INTO state_values (state_id, value, meaning) VALUES
  (710, '0', 'Unknown'), (710, '1', 'Disconnected'), (710, '2', 'Connected_Requesting'),
  (710, '3', 'Connected_Charging'), (710, '5', 'Connected_Finished'),
  (715, '0', 'Unknown'), (715, '1', 'IT_1_Phase'), (715, '2', 'IT_3_Phase'), (715, '3', 'TN_1_Phase'),
  (715, '4', 'TN_3_Phase');

-- Internal: each charger's reconciliation spacing as the daemon learned it (ZAPTEC_RECONCILE_MINUTES up to
-- ZAPTEC_RECONCILE_MAX_MINUTES): doubled after a reconciliation read that revealed nothing the live events had
-- not said, back to the shortest after one that did. Kept across restarts.
CREATE TABLE reconcile_spacing (
  charger_id TEXT PRIMARY KEY,
  spacing_ms INTEGER NOT NULL
) WITHOUT ROWID;
