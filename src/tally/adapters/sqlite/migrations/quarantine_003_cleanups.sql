-- One-off clean-ups of kept entries that SQL alone cannot do (the redaction of secrets from
-- payloads kept before it existed parses JSON and form bodies in Python): each runs once at
-- startup, in batches, and is recorded here when done. Running one again changes nothing.
CREATE TABLE input_quarantine_cleanups (
    name TEXT PRIMARY KEY,
    rows_changed INTEGER NOT NULL
);
