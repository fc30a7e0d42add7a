-- Retention of the embedded store (ADR 0023): a closed period older than the horizon is
-- archived, its archive verified, and only then its rows deleted from the live file.
--
-- The event log stays append-only for everyone else: its delete trigger now lets a
-- delete through only while retention holds the gate open, inside its own transaction.
CREATE TABLE lifecycle_retention_gate (opened INTEGER NOT NULL);
DROP TRIGGER event_log_append_only_delete;
CREATE TRIGGER event_log_append_only_delete BEFORE DELETE ON event_log
WHEN NOT EXISTS (SELECT 1 FROM lifecycle_retention_gate)
BEGIN SELECT RAISE(ABORT, 'event_log is append-only'); END;

-- What the dropped transfers had moved, per account: balances still equal what the
-- transfers in the file plus these add up to (the backup's ledger check).
CREATE TABLE lifecycle_carried (
    account_id TEXT PRIMARY KEY,
    debits_posted INTEGER NOT NULL,
    credits_posted INTEGER NOT NULL
) WITHOUT ROWID;

-- Every partition dropped, with where its verified archive went and its seal's head.
CREATE TABLE lifecycle_archives (
    partition TEXT PRIMARY KEY,
    rows INTEGER NOT NULL,
    head TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    location TEXT NOT NULL,
    dropped_at INTEGER NOT NULL
);
