-- A break missing in Tally keeps its report line (the run's lines are deleted when it
-- finishes), so it can be re-driven as an event; a break a rule adjusted names the
-- ledger transfer it posted (or its reversal).
ALTER TABLE recon_breaks ADD COLUMN line_json text NOT NULL DEFAULT '';
ALTER TABLE recon_breaks ADD COLUMN adjustment text NOT NULL DEFAULT '';
