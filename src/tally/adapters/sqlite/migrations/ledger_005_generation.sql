-- How many write transactions ledger stores have committed to this file. A writer keeps
-- the accounts it has met, with their balances, in memory. When another connection has
-- committed to the file (PRAGMA data_version tells), this number tells whether it was a
-- ledger store (the memory may be stale: drop it) or another component that shares the
-- file, such as the event log or the wallet marks (keep it).
CREATE TABLE ledger_generation (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    n INTEGER NOT NULL
);
INSERT INTO ledger_generation VALUES (1, 0);
