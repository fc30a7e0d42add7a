-- The embedded event log: append-only, one row per idempotency key, in arrival order.
CREATE TABLE event_log (
    position INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE TRIGGER event_log_append_only_update BEFORE UPDATE ON event_log
BEGIN SELECT RAISE(ABORT, 'event_log is append-only'); END;
CREATE TRIGGER event_log_append_only_delete BEFORE DELETE ON event_log
BEGIN SELECT RAISE(ABORT, 'event_log is append-only'); END;
-- Deliveries refused because their key was known with other content.
CREATE TABLE event_conflicts (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    differs_in TEXT NOT NULL,
    body TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
