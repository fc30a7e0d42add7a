-- Login throttling (tally.auth.throttle) replaces the per-user lock-out: attempts are
-- counted per username, per source address and per username from a source, in one
-- row each, checked and counted in one transaction under row locks. username is ''
-- for a source's row. auth_users.failed_logins and locked_until are no longer written.
CREATE TABLE auth_login_throttles (
    key text PRIMARY KEY,
    username text NOT NULL,
    attempts integer NOT NULL,
    last_at timestamptz NOT NULL,
    wait_until timestamptz
);
CREATE INDEX auth_login_throttles_by_username ON auth_login_throttles (username);
CREATE INDEX auth_login_throttles_by_last_at ON auth_login_throttles (last_at);
