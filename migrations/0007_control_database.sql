-- zaptec-sync schema version 7: refresh_requests moves to the control database (ZAPTEC_CONTROL_DB, CONTRACT §10),
-- which also holds `commands`. The daemon moves the requests still open there when it first attaches the
-- control database, and drops this table then; until then it stays, unread.
SELECT 1;
