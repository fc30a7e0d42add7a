-- Payouts (ADR 0021): counterparties, runs, payouts and the payables they claim, in the
-- ledger's database so a payout's state and its ledger transfers commit together.
-- Instants are integer microseconds since the Unix epoch (UTC); amounts minor units.
CREATE TABLE IF NOT EXISTS payout_counterparties (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    party TEXT NOT NULL,
    name TEXT NOT NULL,
    rail TEXT NOT NULL,
    account TEXT NOT NULL,
    bic TEXT NOT NULL,
    blocked INTEGER NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS payout_runs (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    maker TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    totals TEXT NOT NULL,
    lines TEXT NOT NULL,
    approver TEXT NOT NULL,
    approved_at BIGINT
);

CREATE INDEX IF NOT EXISTS payout_runs_created ON payout_runs (created_at, id);

CREATE TABLE IF NOT EXISTS payouts (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    counterparty TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL,
    rail TEXT NOT NULL,
    account TEXT NOT NULL,
    beneficiary_name TEXT NOT NULL,
    bic TEXT NOT NULL,
    legs TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    reserved_until BIGINT,
    next_check_at BIGINT,
    rail_reference TEXT NOT NULL,
    reason TEXT NOT NULL,
    checks INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS payouts_run ON payouts (run_id, id);
CREATE INDEX IF NOT EXISTS payouts_state ON payouts (state, next_check_at, id);
CREATE INDEX IF NOT EXISTS payouts_counterparty ON payouts (counterparty);

-- A payable is in at most one live payout: the primary key refuses a second claim.
CREATE TABLE IF NOT EXISTS payout_claims (
    payable_id TEXT PRIMARY KEY,
    payout_id TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS payout_claims_payout ON payout_claims (payout_id);
