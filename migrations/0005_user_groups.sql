-- zaptec-sync schema version 5: user-group subscriptions (CONTRACT §5, ZAPTEC_USER_GROUPS).

-- Each configured user group's Service Bus subscription, as the daemon last found it (for `status`).
CREATE TABLE user_groups (
  id     TEXT PRIMARY KEY,                     -- a user-group id of ZAPTEC_USER_GROUPS, lower case
  events TEXT NOT NULL,                        -- connected, connecting or failed
  detail TEXT                                  -- why, when it is not connected
);

-- Which group carries an installation's live events. No API says it: the daemon learns it when an observation
-- of one of the installation's chargers arrives through the group, and closes the installation's own
-- subscription from then on. Rows go when the group answers 403/404 or leaves ZAPTEC_USER_GROUPS.
CREATE TABLE user_group_installations (
  installation_id TEXT PRIMARY KEY,
  group_id        TEXT NOT NULL,
  since           TEXT NOT NULL                -- ISO-8601 UTC
);
