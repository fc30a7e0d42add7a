-- Balances apart from the accounts' definitions. Every batch rewrites the balances of
-- thousands of accounts; in the accounts table each update rewrote the whole row (owner,
-- purpose, metadata...) found by its text key. account_balances holds just the figures
-- and the balance rules, keyed by an integer, so an update rewrites some 30 bytes found
-- by a rowid search: less than half the cost. Definitions keep the text id and the
-- account's number; the accounts view joins the two, so readers are unchanged.
CREATE TABLE account_balances (
    num INTEGER PRIMARY KEY,
    flags INTEGER NOT NULL CHECK ((flags & 3) <> 3),
    debits_pending INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    -- Second line of defence behind the engine: balance rules hold in the database too.
    CHECK ((flags & 1) = 0 OR debits_pending + debits_posted <= credits_posted),
    CHECK ((flags & 2) = 0 OR credits_pending + credits_posted <= debits_posted)
);
CREATE TABLE account_definitions (
    id TEXT PRIMARY KEY,
    num INTEGER NOT NULL UNIQUE,
    owner_kind TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    purpose TEXT NOT NULL,
    flags INTEGER NOT NULL DEFAULT 0,
    metadata TEXT,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO account_definitions
    SELECT id, ROW_NUMBER() OVER (ORDER BY id), owner_kind, owner_id, currency, purpose,
           flags, metadata, created_at
    FROM accounts;
INSERT INTO account_balances
    SELECT d.num, a.flags, a.debits_pending, a.debits_posted, a.credits_pending,
           a.credits_posted
    FROM accounts AS a JOIN account_definitions AS d ON d.id = a.id;
DROP TABLE accounts;
CREATE INDEX accounts_by_owner ON account_definitions (owner_kind, owner_id, currency);
CREATE VIEW accounts AS
    SELECT d.id, d.owner_kind, d.owner_id, d.currency, d.purpose, d.flags, d.metadata,
           d.created_at, d.num, b.debits_pending, b.debits_posted, b.credits_pending,
           b.credits_posted
    FROM account_definitions AS d JOIN account_balances AS b ON b.num = d.num;
