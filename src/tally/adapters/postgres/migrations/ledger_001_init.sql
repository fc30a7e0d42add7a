-- Ledger: accounts with their current balances, transfers, and refused requests.
CREATE TABLE accounts (
    id text PRIMARY KEY,
    owner_kind text NOT NULL CHECK (owner_kind IN ('player', 'operator', 'provider', 'partner', 'platform')),
    owner_id text NOT NULL CHECK (owner_id <> ''),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3,5}$'),
    purpose text NOT NULL CHECK (purpose <> ''),
    flags integer NOT NULL DEFAULT 0 CHECK ((flags & 3) <> 3),
    metadata text,
    created_at timestamptz NOT NULL,
    debits_pending bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    -- Second line of defence behind the engine: balance rules hold in the database too.
    CONSTRAINT debits_must_not_exceed_credits
        CHECK ((flags & 1) = 0 OR debits_pending + debits_posted <= credits_posted),
    CONSTRAINT credits_must_not_exceed_debits
        CHECK ((flags & 2) = 0 OR credits_pending + credits_posted <= debits_posted),
    -- Target of the transfers' (account, currency) foreign keys.
    UNIQUE (id, currency)
);
CREATE INDEX accounts_by_owner ON accounts (owner_kind, owner_id, currency);

CREATE TABLE transfers (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    kind text NOT NULL CHECK (kind IN ('single', 'pending', 'post', 'void')),
    debit_account_id text NOT NULL,
    credit_account_id text NOT NULL CHECK (credit_account_id <> debit_account_id),
    amount bigint NOT NULL CHECK (amount > 0),
    currency text NOT NULL,
    code text NOT NULL,
    pending_id text REFERENCES transfers (id),
    timeout_s integer NOT NULL DEFAULT 0,
    expires_at timestamptz,
    status text CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
    resolved_at timestamptz,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    event_ref text,
    metadata text,
    -- Both accounts exist and hold the transfer's currency.
    FOREIGN KEY (debit_account_id, currency) REFERENCES accounts (id, currency),
    FOREIGN KEY (credit_account_id, currency) REFERENCES accounts (id, currency),
    CHECK ((kind = 'pending') = (status IS NOT NULL)),
    CHECK ((kind IN ('post', 'void')) = (pending_id IS NOT NULL))
);
CREATE INDEX transfers_by_debit ON transfers (debit_account_id, seq);
CREATE INDEX transfers_by_credit ON transfers (credit_account_id, seq);
CREATE INDEX transfers_due ON transfers (expires_at) WHERE status = 'pending' AND expires_at IS NOT NULL;

CREATE TABLE transfer_rejections (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id text NOT NULL,
    code integer NOT NULL,
    reason text NOT NULL,
    request text NOT NULL,
    rejected_at timestamptz NOT NULL
);
CREATE INDEX transfer_rejections_by_transfer ON transfer_rejections (transfer_id);
