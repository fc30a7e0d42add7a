-- The data lifecycle on PostgreSQL (ADR 0023): the ledger's refusals, an append-only
-- table that grows with traffic, partitioned by region (LIST) and then by time (RANGE),
-- declaratively. There is no DEFAULT partition: a row for which `tally maintain` made no
-- partition is refused by PostgreSQL ("no partition of relation ... found for row")
-- rather than dropped into a catch-all, and the maintenance job alerts before that
-- happens (coverage ahead).
--
-- A partitioned table's unique constraints must hold its partition key, so the primary
-- key is (region, rejected_at, seq); seq comes from a sequence of its own (PostgreSQL 15
-- has no identity columns on partitioned tables). The region of a row is the session's
-- `tally.region` setting, else 'global'.
ALTER TABLE transfer_rejections RENAME TO transfer_rejections_flat;
ALTER INDEX transfer_rejections_by_transfer RENAME TO transfer_rejections_flat_by_transfer;
CREATE SEQUENCE transfer_rejections_seq_p;
CREATE TABLE transfer_rejections (
    seq bigint NOT NULL DEFAULT nextval('transfer_rejections_seq_p'),
    transfer_id text NOT NULL,
    code integer NOT NULL,
    reason text NOT NULL,
    request text NOT NULL,
    rejected_at timestamptz NOT NULL,
    region text NOT NULL
        DEFAULT COALESCE(NULLIF(current_setting('tally.region', true), ''), 'global')
        CHECK (region ~ '^[a-z0-9_]{1,20}$'),
    PRIMARY KEY (region, rejected_at, seq)
) PARTITION BY LIST (region);
ALTER SEQUENCE transfer_rejections_seq_p OWNED BY transfer_rejections.seq;
CREATE INDEX transfer_rejections_by_transfer ON transfer_rejections (transfer_id);

-- The rows already there move into monthly partitions of the 'global' region.
DO $$
DECLARE
    m timestamptz;
BEGIN
    IF EXISTS (SELECT 1 FROM transfer_rejections_flat) THEN
        EXECUTE 'CREATE TABLE transfer_rejections_r_global PARTITION OF transfer_rejections'
            ' FOR VALUES IN (''global'') PARTITION BY RANGE (rejected_at)';
        FOR m IN
            SELECT DISTINCT date_trunc('month', rejected_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
            FROM transfer_rejections_flat
        LOOP
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF transfer_rejections_r_global'
                ' FOR VALUES FROM (%L) TO (%L)',
                'transfer_rejections_r_global_p_' || to_char(m AT TIME ZONE 'UTC', 'YYYYMM'),
                m, m + interval '1 month');
        END LOOP;
        INSERT INTO transfer_rejections (seq, transfer_id, code, reason, request, rejected_at,
                                         region)
            SELECT seq, transfer_id, code, reason, request, rejected_at, 'global'
            FROM transfer_rejections_flat;
        PERFORM setval('transfer_rejections_seq_p',
                       (SELECT MAX(seq) FROM transfer_rejections_flat));
    END IF;
END
$$;
DROP TABLE transfer_rejections_flat;

-- Every partition retention dropped: where its verified archive went, its seal's head.
CREATE TABLE lifecycle_archives (
    partition text PRIMARY KEY,
    rows bigint NOT NULL,
    head text NOT NULL,
    manifest_sha256 text NOT NULL,
    location text NOT NULL,
    dropped_at timestamptz NOT NULL
);
