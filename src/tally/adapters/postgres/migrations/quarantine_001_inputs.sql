-- The input quarantine: everything refused on the way in, with its raw payload and reason.
-- Entries are never edited except for their status (open -> redriven | dismissed).
CREATE TABLE input_quarantine (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    channel TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    payload TEXT NOT NULL,
    headers JSONB NOT NULL,
    idem_key TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'redriven', 'dismissed')),
    resolved_at TIMESTAMPTZ,
    resolved_by TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX input_quarantine_open ON input_quarantine (status, reason, id);
