-- zaptec-sync schema version 6: charge history after any restart (CONTRACT §7 "Charge history after a restart").

-- When the installation's last pass after a restart or a live-event gap began: such passes run at most once per
-- 15 minutes per installation, counted across restarts (a daemon restarted in a loop reads each history once).
ALTER TABLE charge_history_passes ADD COLUMN gap_read_at TEXT;
