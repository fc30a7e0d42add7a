-- Reconciliation: runs (one per provider report file), the report's lines (kept apart
-- from the events they describe), the breaks found and each break's history.
CREATE TABLE recon_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    rules TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    lines INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0,
    breaks INTEGER NOT NULL DEFAULT 0,
    json_report BLOB,
    json_sha256 TEXT NOT NULL DEFAULT '',
    csv_report BLOB,
    csv_sha256 TEXT NOT NULL DEFAULT '',
    finished_at INTEGER
);
-- A file is taken once per provider: a second finished run of it cannot exist.
CREATE UNIQUE INDEX recon_runs_file ON recon_runs (provider, file_sha256) WHERE status = 'done';
CREATE TABLE recon_lines (
    run_id INTEGER NOT NULL REFERENCES recon_runs (id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    source TEXT NOT NULL,
    line INTEGER NOT NULL,
    tx_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    operator TEXT NOT NULL,
    player TEXT NOT NULL,
    round_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,
    ref TEXT NOT NULL,
    provider TEXT NOT NULL
);
CREATE INDEX recon_lines_day ON recon_lines (run_id, day);
CREATE TABLE recon_breaks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES recon_runs (id),
    break_key TEXT NOT NULL,
    kind INTEGER NOT NULL,
    provider TEXT NOT NULL,
    operator TEXT NOT NULL,
    currency TEXT NOT NULL,
    day TEXT NOT NULL,
    tally_day TEXT NOT NULL,
    report_ref TEXT NOT NULL,
    tally_key TEXT NOT NULL,
    report_amount INTEGER NOT NULL,
    tally_amount INTEGER NOT NULL,
    source TEXT NOT NULL,
    found_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    UNIQUE (run_id, break_key)
);
CREATE INDEX recon_breaks_status ON recon_breaks (status, id);
CREATE TABLE recon_break_history (
    break_id INTEGER NOT NULL REFERENCES recon_breaks (id),
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    owner TEXT NOT NULL,
    at INTEGER NOT NULL,
    by_actor TEXT NOT NULL,
    note TEXT NOT NULL,
    PRIMARY KEY (break_id, seq)
);
