-- The ledger's transfers partitioned by region (LIST) then time (RANGE on recorded_at),
-- with no DEFAULT partition (ADR 0023).
--
-- A partitioned table's unique constraints must hold its partition key, so `id` can no
-- longer be unique on `transfers` itself. Its uniqueness across all time (the ledger's
-- idempotency backstop; a concurrent writer of the same id meets a unique violation and
-- retries, ADR 0016) moves to `transfer_keys`, an unpartitioned table every insert into
-- `transfers` also writes (one statement trigger, from the inserted rows); `pending_id`
-- references it, checked at commit, since a post and its pending may come in one COPY.
-- The keys outlive a dropped partition, so an archived transfer's id stays taken.
ALTER TABLE transfers RENAME TO transfers_flat;
ALTER INDEX transfers_by_debit RENAME TO transfers_flat_by_debit;
ALTER INDEX transfers_by_credit RENAME TO transfers_flat_by_credit;
ALTER INDEX transfers_due RENAME TO transfers_flat_due;
DROP TRIGGER transfers_accounts_exist_on_insert ON transfers_flat;
DROP TRIGGER transfers_accounts_exist_on_update ON transfers_flat;

CREATE TABLE transfer_keys (
    id text PRIMARY KEY,
    region text NOT NULL,
    recorded_at timestamptz NOT NULL
);

CREATE SEQUENCE transfers_seq_p;
CREATE TABLE transfers (
    seq bigint NOT NULL DEFAULT nextval('transfers_seq_p'),
    id text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('single', 'pending', 'post', 'void')),
    debit_account_id text NOT NULL,
    credit_account_id text NOT NULL CHECK (credit_account_id <> debit_account_id),
    amount bigint NOT NULL CHECK (amount > 0),
    currency text NOT NULL,
    code text NOT NULL,
    pending_id text REFERENCES transfer_keys (id) DEFERRABLE INITIALLY DEFERRED,
    timeout_s integer NOT NULL DEFAULT 0,
    expires_at timestamptz,
    status text CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
    resolved_at timestamptz,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    event_ref text,
    metadata text,
    region text NOT NULL
        DEFAULT COALESCE(NULLIF(current_setting('tally.region', true), ''), 'global')
        CHECK (region ~ '^[a-z0-9_]{1,20}$'),
    PRIMARY KEY (region, recorded_at, seq),
    CHECK ((kind = 'pending') = (status IS NOT NULL)),
    CHECK ((kind IN ('post', 'void')) = (pending_id IS NOT NULL))
) PARTITION BY LIST (region);
ALTER SEQUENCE transfers_seq_p OWNED BY transfers.seq;
CREATE INDEX transfers_by_id ON transfers (id);
CREATE INDEX transfers_by_debit ON transfers (debit_account_id, seq);
CREATE INDEX transfers_by_credit ON transfers (credit_account_id, seq);
CREATE INDEX transfers_due ON transfers (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;

CREATE FUNCTION transfers_keep_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO transfer_keys (id, region, recorded_at)
        SELECT id, region, recorded_at FROM written;
    RETURN NULL;
END
$$;
CREATE TRIGGER transfers_keys_on_insert AFTER INSERT ON transfers
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION transfers_keep_keys();
CREATE TRIGGER transfers_accounts_exist_on_insert AFTER INSERT ON transfers
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION transfers_accounts_exist();
CREATE TRIGGER transfers_accounts_exist_on_update AFTER UPDATE ON transfers
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION transfers_accounts_exist();

-- The transfers already there move into monthly partitions of the 'global' region.
DO $$
DECLARE
    m timestamptz;
BEGIN
    IF EXISTS (SELECT 1 FROM transfers_flat) THEN
        EXECUTE 'CREATE TABLE transfers_r_global PARTITION OF transfers'
            ' FOR VALUES IN (''global'') PARTITION BY RANGE (recorded_at)';
        FOR m IN
            SELECT DISTINCT date_trunc('month', recorded_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
            FROM transfers_flat
        LOOP
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF transfers_r_global FOR VALUES FROM (%L) TO (%L)',
                'transfers_r_global_p_' || to_char(m AT TIME ZONE 'UTC', 'YYYYMM'),
                m, m + interval '1 month');
        END LOOP;
        INSERT INTO transfers (seq, id, kind, debit_account_id, credit_account_id, amount,
                               currency, code, pending_id, timeout_s, expires_at, status,
                               resolved_at, occurred_at, recorded_at, event_ref, metadata,
                               region)
            SELECT seq, id, kind, debit_account_id, credit_account_id, amount, currency, code,
                   pending_id, timeout_s, expires_at, status, resolved_at, occurred_at,
                   recorded_at, event_ref, metadata, 'global'
            FROM transfers_flat ORDER BY seq;
        PERFORM setval('transfers_seq_p', (SELECT MAX(seq) FROM transfers_flat));
    END IF;
END
$$;
DROP TABLE transfers_flat;
