-- Login throttling (tally.auth.throttle) replaces the per-user lock-out: attempts are
-- counted per username, per source address and per username from a source, in one
-- row each, checked and counted in one transaction. username is '' for a source's row.
-- Times are integer microseconds since the Unix epoch (UTC). auth_users.failed_logins
-- and locked_until are no longer written.
CREATE TABLE auth_login_throttles (
    key TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    wait_until INTEGER
);
CREATE INDEX auth_login_throttles_by_username ON auth_login_throttles (username);
CREATE INDEX auth_login_throttles_by_last_at ON auth_login_throttles (last_at);
