-- Settlement state: what each event did (for rollbacks), early rollbacks, the open
-- figures, closed periods with their statements, problems, and log positions.
CREATE TABLE settlement_effects (
    key text PRIMARY KEY,
    contract_id text NOT NULL,
    version integer NOT NULL,
    provider text NOT NULL,
    operator text NOT NULL,
    period text NOT NULL,
    game_type text NOT NULL,
    currency text NOT NULL,
    region text NOT NULL,
    period_start timestamptz NOT NULL,
    turnover bigint NOT NULL,
    wins bigint NOT NULL,
    bonuses bigint NOT NULL,
    jackpot_contributions bigint NOT NULL,
    commission text,
    late_of text,
    rolled_back_by text
);
CREATE TABLE settlement_orphans (
    original_key text PRIMARY KEY,
    rollback_key text NOT NULL
);
CREATE TABLE settlement_totals (
    contract_id text NOT NULL,
    version integer NOT NULL,
    provider text NOT NULL,
    operator text NOT NULL,
    period text NOT NULL,
    game_type text NOT NULL,
    currency text NOT NULL,
    region text NOT NULL,
    turnover bigint NOT NULL,
    wins bigint NOT NULL,
    bonuses bigint NOT NULL,
    jackpot_contributions bigint NOT NULL,
    PRIMARY KEY (contract_id, version, provider, operator, period, game_type, currency, region)
);
CREATE TABLE settlement_fee_accrued (
    contract_id text NOT NULL,
    version integer NOT NULL,
    provider text NOT NULL,
    operator text NOT NULL,
    period text NOT NULL,
    accrued bigint NOT NULL,
    PRIMARY KEY (contract_id, version, provider, operator, period)
);
CREATE TABLE settlement_commissions (
    operator text NOT NULL,
    agent text NOT NULL,
    period text NOT NULL,
    currency text NOT NULL,
    exact numeric NOT NULL,
    accrued bigint NOT NULL,
    PRIMARY KEY (operator, agent, period, currency)
);
CREATE TABLE settlement_closed (
    contract_id text NOT NULL,
    operator text NOT NULL,
    period text NOT NULL,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    carried bigint NOT NULL,
    PRIMARY KEY (contract_id, operator)
);
CREATE TABLE settlement_statements (
    contract_id text NOT NULL,
    operator text NOT NULL,
    period text NOT NULL,
    document text NOT NULL,
    csv text NOT NULL,
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    closed_at timestamptz NOT NULL,
    PRIMARY KEY (contract_id, operator, period)
);
CREATE TABLE settlement_problems (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_key text NOT NULL,
    reason text NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE TABLE settlement_positions (
    consumer text PRIMARY KEY,
    position bigint NOT NULL CHECK (position >= 0)
);
