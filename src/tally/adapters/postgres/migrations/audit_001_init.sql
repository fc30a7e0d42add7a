-- The hash-chained audit trail. Append-only: the trigger refuses updates and deletes.
CREATE TABLE audit_records (
    seq bigint PRIMARY KEY,
    actor text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    at timestamptz NOT NULL,
    source text NOT NULL,
    before text,
    after text,
    detail text NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL
);
CREATE INDEX audit_by_actor ON audit_records (actor, seq);
CREATE INDEX audit_by_action ON audit_records (action, seq);

-- One row: the last record's sequence number and hash, sealed with the audit key.
CREATE TABLE audit_head (
    id integer PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash text NOT NULL,
    seal text NOT NULL
);

CREATE FUNCTION audit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END;
$$;

CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
