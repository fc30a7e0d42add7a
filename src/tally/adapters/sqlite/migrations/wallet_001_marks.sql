-- Wallet mode: rollbacks that arrived before the transaction they void. When that
-- transaction arrives later it is cancelled instead of applied.
CREATE TABLE wallet_rollback_marks (
    original TEXT PRIMARY KEY,  -- provider:transaction id
    rollback_key TEXT NOT NULL,
    marked_at INTEGER NOT NULL
) WITHOUT ROWID;
