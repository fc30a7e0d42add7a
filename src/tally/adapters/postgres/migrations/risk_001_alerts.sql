-- Risk watch: alerts (one row per alert; the latest of a (kind, key) is the live one),
-- silences, versioned alert rules, the delivery outbox, playbook actions and the
-- switches they set.
CREATE TABLE risk_alerts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL,
    key text NOT NULL,
    status text NOT NULL,
    severity text NOT NULL,
    region text NOT NULL,
    provider text NOT NULL,
    operator text NOT NULL,
    game text NOT NULL,
    clearing bigint NOT NULL DEFAULT 0,
    doc text NOT NULL
);
CREATE INDEX risk_alerts_key ON risk_alerts (kind, key, id);
CREATE INDEX risk_alerts_status ON risk_alerts (status, id);
CREATE TABLE risk_silences (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author text NOT NULL,
    reason text NOT NULL,
    matchers text NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    expired_at timestamptz
);
CREATE TABLE risk_rules (
    version bigint PRIMARY KEY,
    document text NOT NULL,
    saved_at timestamptz NOT NULL
);
CREATE TABLE risk_outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sink text NOT NULL,
    alert_id bigint NOT NULL,
    body bytea NOT NULL,
    created_at timestamptz NOT NULL,
    next_at timestamptz NOT NULL,
    attempts bigint NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'pending',
    last_error text NOT NULL DEFAULT '',
    delivered_at timestamptz
);
CREATE INDEX risk_outbox_due ON risk_outbox (status, next_at, id);
CREATE TABLE risk_actions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    playbook text NOT NULL,
    action text NOT NULL,
    alert_id bigint NOT NULL,
    switch text NOT NULL,
    target text NOT NULL,
    status text NOT NULL,
    at timestamptz NOT NULL,
    detail text NOT NULL,
    prior text NOT NULL,
    approved_by text NOT NULL DEFAULT '',
    undone_by text NOT NULL DEFAULT ''
);
CREATE INDEX risk_actions_playbook ON risk_actions (playbook, at);
CREATE TABLE risk_switches (
    kind text NOT NULL,
    target text NOT NULL,
    is_on bigint NOT NULL,
    by_action bigint NOT NULL,
    at timestamptz,
    PRIMARY KEY (kind, target)
);
