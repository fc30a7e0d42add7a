-- Each event's provider and time (and whether it is a rollback), filled in the append's
-- transaction: reconciliation reads one provider's events of a time window in time order
-- by this table's key instead of scanning and sorting the whole log (ADR 0019). Events
-- logged before this migration are filled in when the log is next opened.
CREATE TABLE event_times (
    provider TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    position INTEGER NOT NULL,
    rollback INTEGER NOT NULL,
    PRIMARY KEY (provider, occurred_at, position)
) WITHOUT ROWID;
CREATE INDEX event_times_rollbacks ON event_times (provider, position) WHERE rollback = 1;
