-- Staff users, their sessions, and API keys for machine clients.
CREATE TABLE auth_users (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    username text NOT NULL UNIQUE,
    roles text NOT NULL,
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL,
    scope text NOT NULL,
    totp_secret bytea,
    mfa_enabled boolean NOT NULL,
    last_totp_step bigint NOT NULL,
    failed_logins integer NOT NULL,
    locked_until timestamptz,
    disabled boolean NOT NULL,
    password_changed_at timestamptz
);

CREATE TABLE auth_sessions (
    token_hash text PRIMARY KEY,
    user_id text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    stage text NOT NULL,
    source text NOT NULL
);
CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id);

CREATE TABLE auth_api_keys (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    name text NOT NULL,
    secret_hash text NOT NULL,
    roles text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    scope text NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);
