-- Reconciliation: runs (one per provider report file), the report's lines (kept apart
-- from the events they describe), the breaks found and each break's history.
CREATE TABLE recon_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider text NOT NULL,
    name text NOT NULL,
    file_sha256 text NOT NULL,
    rules text NOT NULL,
    started_at timestamptz NOT NULL,
    status text NOT NULL,
    lines bigint NOT NULL DEFAULT 0,
    refused bigint NOT NULL DEFAULT 0,
    breaks bigint NOT NULL DEFAULT 0,
    json_report bytea,
    json_sha256 text NOT NULL DEFAULT '',
    csv_report bytea,
    csv_sha256 text NOT NULL DEFAULT '',
    finished_at timestamptz
);
-- A file is taken once per provider: a second finished run of it cannot exist.
CREATE UNIQUE INDEX recon_runs_file ON recon_runs (provider, file_sha256) WHERE status = 'done';
CREATE TABLE recon_lines (
    run_id bigint NOT NULL REFERENCES recon_runs (id) ON DELETE CASCADE,
    day text NOT NULL,
    source text NOT NULL,
    line bigint NOT NULL,
    tx_id text NOT NULL,
    kind text NOT NULL,
    operator text NOT NULL,
    player text NOT NULL,
    round_id text NOT NULL,
    currency text NOT NULL,
    amount bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    ref text NOT NULL,
    provider text NOT NULL
);
CREATE INDEX recon_lines_day ON recon_lines (run_id, day);
CREATE TABLE recon_breaks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES recon_runs (id),
    break_key text NOT NULL,
    kind integer NOT NULL,
    provider text NOT NULL,
    operator text NOT NULL,
    currency text NOT NULL,
    day text NOT NULL,
    tally_day text NOT NULL,
    report_ref text NOT NULL,
    tally_key text NOT NULL,
    report_amount bigint NOT NULL,
    tally_amount bigint NOT NULL,
    source text NOT NULL,
    found_at timestamptz NOT NULL,
    status text NOT NULL,
    owner text NOT NULL DEFAULT '',
    UNIQUE (run_id, break_key)
);
CREATE INDEX recon_breaks_status ON recon_breaks (status, id);
CREATE TABLE recon_break_history (
    break_id bigint NOT NULL REFERENCES recon_breaks (id),
    seq integer NOT NULL,
    status text NOT NULL,
    owner text NOT NULL,
    at timestamptz NOT NULL,
    by_actor text NOT NULL,
    note text NOT NULL,
    PRIMARY KEY (break_id, seq)
);
