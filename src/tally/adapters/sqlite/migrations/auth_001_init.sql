-- Staff users, their sessions, and API keys for machine clients.
-- Times are integer microseconds since the Unix epoch (UTC).
CREATE TABLE auth_users (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL UNIQUE,
    roles TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    scope TEXT NOT NULL,
    totp_secret BLOB,
    mfa_enabled INTEGER NOT NULL,
    last_totp_step INTEGER NOT NULL,
    failed_logins INTEGER NOT NULL,
    locked_until INTEGER,
    disabled INTEGER NOT NULL,
    password_changed_at INTEGER
);

CREATE TABLE auth_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    stage TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id);

CREATE TABLE auth_api_keys (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    scope TEXT NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
