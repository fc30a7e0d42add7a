-- The same checks on transfers, written without IN lists. SQLite evaluates a CHECK's
-- `x IN ('a', 'b', ...)` by building a temporary lookup table for every row inserted,
-- which made each insert cost about twice as much as the row itself; a chain of `=`
-- tests is checked in place. SQLite cannot alter a CHECK, so the table is rebuilt
-- (seq values kept) and its index made again.
CREATE TABLE transfers_rebuilt (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL
        CHECK (kind = 'single' OR kind = 'pending' OR kind = 'post' OR kind = 'void'),
    debit_account_id TEXT NOT NULL,
    credit_account_id TEXT NOT NULL CHECK (credit_account_id <> debit_account_id),
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    code TEXT NOT NULL,
    pending_id TEXT,
    timeout_s INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER,
    status TEXT CHECK (
        status IS NULL OR status = 'pending' OR status = 'posted' OR status = 'voided'
        OR status = 'expired'
    ),
    resolved_at INTEGER,
    occurred_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    event_ref TEXT,
    metadata TEXT
);
INSERT INTO transfers_rebuilt SELECT * FROM transfers ORDER BY seq;
DROP TABLE transfers;
ALTER TABLE transfers_rebuilt RENAME TO transfers;
CREATE INDEX transfers_due ON transfers (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;
