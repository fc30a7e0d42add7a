-- A rollback waiting for its original keeps its instant, operator, currency and the
-- contract period it falls in, so that one that outlived its period's close can be
-- told apart. Rows from before stay NULL there: their period is shown as unknown.
ALTER TABLE settlement_orphans ADD COLUMN occurred_at INTEGER;
ALTER TABLE settlement_orphans ADD COLUMN operator TEXT;
ALTER TABLE settlement_orphans ADD COLUMN currency TEXT;
ALTER TABLE settlement_orphans ADD COLUMN contract_id TEXT;
ALTER TABLE settlement_orphans ADD COLUMN period TEXT;
ALTER TABLE settlement_orphans ADD COLUMN period_start INTEGER;
