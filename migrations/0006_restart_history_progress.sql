-- zaptec-sync schema version 6: charge history after any restart (CONTRACT §7), and the progress of long work.

-- When the installation's last pass after a restart or a live-event gap began: such passes run at most once per
-- 15 minutes per installation, counted across restarts (a daemon restarted in a loop reads each history once).
ALTER TABLE charge_history_passes ADD COLUMN gap_read_at TEXT;

-- Long work under way (the first start's state pass, the charge-history backfill): "n of N, about M minutes
-- left", rewritten with the heartbeat; NULL when there is none. `status` shows it.
ALTER TABLE daemon ADD COLUMN progress TEXT;
