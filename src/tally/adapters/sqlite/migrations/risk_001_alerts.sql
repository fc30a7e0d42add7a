-- Risk watch: alerts (one row per alert; the latest of a (kind, key) is the live one),
-- silences, versioned alert rules, the delivery outbox, playbook actions and the
-- switches they set.
CREATE TABLE risk_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    region TEXT NOT NULL,
    provider TEXT NOT NULL,
    operator TEXT NOT NULL,
    game TEXT NOT NULL,
    clearing INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE INDEX risk_alerts_key ON risk_alerts (kind, key, id);
CREATE INDEX risk_alerts_status ON risk_alerts (status, id);
CREATE TABLE risk_silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    author TEXT NOT NULL,
    reason TEXT NOT NULL,
    matchers TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expired_at INTEGER
);
CREATE TABLE risk_rules (
    version INTEGER PRIMARY KEY,
    document TEXT NOT NULL,
    saved_at INTEGER NOT NULL
);
CREATE TABLE risk_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    alert_id INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT NOT NULL DEFAULT '',
    delivered_at INTEGER
);
CREATE INDEX risk_outbox_due ON risk_outbox (status, next_at, id);
CREATE TABLE risk_actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    playbook TEXT NOT NULL,
    action TEXT NOT NULL,
    alert_id INTEGER NOT NULL,
    switch TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    at INTEGER NOT NULL,
    detail TEXT NOT NULL,
    prior TEXT NOT NULL,
    approved_by TEXT NOT NULL DEFAULT '',
    undone_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX risk_actions_playbook ON risk_actions (playbook, at);
CREATE TABLE risk_switches (
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    is_on INTEGER NOT NULL,
    by_action INTEGER NOT NULL,
    at INTEGER,
    PRIMARY KEY (kind, target)
);
