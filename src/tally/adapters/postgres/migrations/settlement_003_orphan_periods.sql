-- A rollback waiting for its original keeps its instant, operator, currency and the
-- contract period it falls in, so that one that outlived its period's close can be
-- told apart. Rows from before stay NULL there: their period is shown as unknown.
ALTER TABLE settlement_orphans
    ADD COLUMN occurred_at timestamptz,
    ADD COLUMN operator text,
    ADD COLUMN currency text,
    ADD COLUMN contract_id text,
    ADD COLUMN period text,
    ADD COLUMN period_start timestamptz;
