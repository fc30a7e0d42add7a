-- Balances apart from the accounts' definitions, as the embedded store keeps them (its
-- ledger_004). Every batch rewrites the balances of thousands of accounts; in the
-- accounts table each update rewrote the whole row (owner, purpose, metadata...) and
-- kept the row's page busy with versions of it. account_balances holds just the figures
-- and the balance rules (measured: an update of 10,000 such rows costs 9-10 µs a row,
-- against 16 in the wide table). Definitions, which never change, keep everything else;
-- the accounts view joins the two, so readers are unchanged.
ALTER TABLE accounts RENAME TO account_definitions;

CREATE TABLE account_balances (
    id text PRIMARY KEY,
    flags integer NOT NULL CHECK ((flags & 3) <> 3),
    debits_pending bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    -- Second line of defence behind the engine: balance rules hold in the database too.
    CONSTRAINT debits_must_not_exceed_credits
        CHECK ((flags & 1) = 0 OR debits_pending + debits_posted <= credits_posted),
    CONSTRAINT credits_must_not_exceed_debits
        CHECK ((flags & 2) = 0 OR credits_pending + credits_posted <= debits_posted)
) WITH (fillfactor = 70);  -- room on each page to update balances in place (HOT)

INSERT INTO account_balances
    SELECT id, flags, debits_pending, debits_posted, credits_pending, credits_posted
    FROM account_definitions;

ALTER TABLE account_definitions
    DROP CONSTRAINT debits_must_not_exceed_credits,
    DROP CONSTRAINT credits_must_not_exceed_debits,
    DROP COLUMN debits_pending,
    DROP COLUMN debits_posted,
    DROP COLUMN credits_pending,
    DROP COLUMN credits_posted,
    RESET (fillfactor);

CREATE VIEW accounts AS
    SELECT d.id, d.owner_kind, d.owner_id, d.currency, d.purpose, d.flags, d.metadata,
           d.created_at, b.debits_pending, b.debits_posted, b.credits_pending,
           b.credits_posted
    FROM account_definitions AS d JOIN account_balances AS b ON b.id = d.id;

-- The transfers' accounts are looked up in the definitions, which are never updated:
-- no versions of a row to walk past.
CREATE OR REPLACE FUNCTION transfers_accounts_exist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing record;
BEGIN
    -- EXECUTE plans the check for this statement's rows (see ledger_002).
    EXECUTE 'SELECT n.id, n.currency FROM written n '
        'JOIN (SELECT p.account, p.currency FROM ('
        '        SELECT debit_account_id AS account, currency FROM written '
        '        UNION SELECT credit_account_id, currency FROM written) p '
        '      WHERE NOT EXISTS (SELECT 1 FROM account_definitions a '
        '                        WHERE a.id = p.account AND a.currency = p.currency) '
        '      LIMIT 1) bad '
        '  ON bad.currency = n.currency '
        ' AND bad.account IN (n.debit_account_id, n.credit_account_id) '
        'LIMIT 1'
        INTO missing;
    IF missing.id IS NOT NULL THEN
        RAISE EXCEPTION 'transfer % names an account that does not exist in %',
            missing.id, missing.currency
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
