-- Settlement state: what each event did (for rollbacks), early rollbacks, the open
-- figures, closed periods with their statements, and each consumer's log position.
CREATE TABLE settlement_effects (
    key TEXT PRIMARY KEY,
    contract_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    provider TEXT NOT NULL,
    operator TEXT NOT NULL,
    period TEXT NOT NULL,
    game_type TEXT NOT NULL,
    currency TEXT NOT NULL,
    region TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    turnover INTEGER NOT NULL,
    wins INTEGER NOT NULL,
    bonuses INTEGER NOT NULL,
    jackpot_contributions INTEGER NOT NULL,
    commission TEXT,
    late_of TEXT,
    rolled_back_by TEXT
);
CREATE TABLE settlement_orphans (
    original_key TEXT PRIMARY KEY,
    rollback_key TEXT NOT NULL
);
CREATE TABLE settlement_totals (
    contract_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    provider TEXT NOT NULL,
    operator TEXT NOT NULL,
    period TEXT NOT NULL,
    game_type TEXT NOT NULL,
    currency TEXT NOT NULL,
    region TEXT NOT NULL,
    turnover INTEGER NOT NULL,
    wins INTEGER NOT NULL,
    bonuses INTEGER NOT NULL,
    jackpot_contributions INTEGER NOT NULL,
    PRIMARY KEY (contract_id, version, provider, operator, period, game_type, currency, region)
);
CREATE TABLE settlement_fee_accrued (
    contract_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    provider TEXT NOT NULL,
    operator TEXT NOT NULL,
    period TEXT NOT NULL,
    accrued INTEGER NOT NULL,
    PRIMARY KEY (contract_id, version, provider, operator, period)
);
CREATE TABLE settlement_commissions (
    operator TEXT NOT NULL,
    agent TEXT NOT NULL,
    period TEXT NOT NULL,
    currency TEXT NOT NULL,
    exact TEXT NOT NULL,
    accrued INTEGER NOT NULL,
    PRIMARY KEY (operator, agent, period, currency)
);
CREATE TABLE settlement_closed (
    contract_id TEXT NOT NULL,
    operator TEXT NOT NULL,
    period TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    period_end INTEGER NOT NULL,
    carried INTEGER NOT NULL,
    PRIMARY KEY (contract_id, operator)
);
CREATE TABLE settlement_statements (
    contract_id TEXT NOT NULL,
    operator TEXT NOT NULL,
    period TEXT NOT NULL,
    document TEXT NOT NULL,
    csv TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    closed_at INTEGER NOT NULL,
    PRIMARY KEY (contract_id, operator, period)
);
CREATE TABLE settlement_positions (
    consumer TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE settlement_problems (
    seq INTEGER PRIMARY KEY,
    event_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
