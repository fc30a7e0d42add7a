-- Both accounts of a transfer exist and hold its currency: checked once per statement
-- over all the rows it wrote, not by a foreign-key lookup and row lock per row (which
-- made a COPY of transfers 3.6 times slower). The engine checks the same under row locks
-- first; this stays the database's second line of defence (docs/adr/0008).
ALTER TABLE transfers DROP CONSTRAINT transfers_debit_account_id_currency_fkey;
ALTER TABLE transfers DROP CONSTRAINT transfers_credit_account_id_currency_fkey;

CREATE FUNCTION transfers_accounts_exist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing record;
BEGIN
    -- EXECUTE plans the check for this statement's rows: a plan kept from a COPY of
    -- thousands (a hash join over every account) would make each single insert slow.
    -- Each (account, currency) the statement names is looked up once, however many of
    -- its rows name it; the transfer is found only to say which one failed.
    EXECUTE 'SELECT n.id, n.currency FROM written n '
        'JOIN (SELECT p.account, p.currency FROM ('
        '        SELECT debit_account_id AS account, currency FROM written '
        '        UNION SELECT credit_account_id, currency FROM written) p '
        '      WHERE NOT EXISTS (SELECT 1 FROM accounts a '
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

CREATE TRIGGER transfers_accounts_exist_on_insert AFTER INSERT ON transfers
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION transfers_accounts_exist();
CREATE TRIGGER transfers_accounts_exist_on_update AFTER UPDATE ON transfers
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION transfers_accounts_exist();

-- What the foreign keys also gave: an account a transfer names never goes away or
-- changes its id or currency. Accounts are never deleted; their definitions never change.
CREATE FUNCTION accounts_keep_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'account % cannot be deleted', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RAISE EXCEPTION 'account % cannot change its id or currency', OLD.id
        USING ERRCODE = 'foreign_key_violation';
END
$$;

CREATE TRIGGER accounts_keep_identity BEFORE DELETE OR UPDATE OF id, currency ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_keep_identity();
