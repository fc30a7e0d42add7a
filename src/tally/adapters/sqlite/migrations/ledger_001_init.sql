-- Ledger: accounts with their current balances, transfers, and refused requests.
-- Times are integer microseconds since the Unix epoch (UTC).
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    owner_kind TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    purpose TEXT NOT NULL,
    flags INTEGER NOT NULL DEFAULT 0,
    metadata TEXT,
    created_at INTEGER NOT NULL,
    debits_pending INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    -- Second line of defence behind the engine: balance rules hold in the database too.
    CHECK ((flags & 1) = 0 OR debits_pending + debits_posted <= credits_posted),
    CHECK ((flags & 2) = 0 OR credits_pending + credits_posted <= debits_posted),
    CHECK ((flags & 3) <> 3)
) WITHOUT ROWID;  -- clustered on id: a balance update is one B-tree search
CREATE INDEX accounts_by_owner ON accounts (owner_kind, owner_id, currency);

CREATE TABLE transfers (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('single', 'pending', 'post', 'void')),
    debit_account_id TEXT NOT NULL,
    credit_account_id TEXT NOT NULL CHECK (credit_account_id <> debit_account_id),
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    code TEXT NOT NULL,
    pending_id TEXT,
    timeout_s INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER,
    status TEXT CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
    resolved_at INTEGER,
    occurred_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    event_ref TEXT,
    metadata TEXT
);
CREATE INDEX transfers_by_debit ON transfers (debit_account_id, seq);
CREATE INDEX transfers_by_credit ON transfers (credit_account_id, seq);
CREATE INDEX transfers_due ON transfers (expires_at) WHERE status = 'pending' AND expires_at IS NOT NULL;

CREATE TABLE transfer_rejections (
    seq INTEGER PRIMARY KEY,
    transfer_id TEXT NOT NULL,
    code INTEGER NOT NULL,
    reason TEXT NOT NULL,
    request TEXT NOT NULL,
    rejected_at INTEGER NOT NULL
);
CREATE INDEX transfer_rejections_by_transfer ON transfer_rejections (transfer_id);
