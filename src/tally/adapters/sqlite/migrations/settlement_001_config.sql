-- Versioned settlement configuration (contracts, agents, placements, FX rates) as
-- append-only JSON documents. recorded_at: microseconds since the Unix epoch (UTC).
CREATE TABLE settlement_config (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('contract', 'agent', 'placement', 'fx_rate')),
    key TEXT NOT NULL,
    document TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    UNIQUE (kind, key)
);
CREATE TRIGGER settlement_config_append_only_update BEFORE UPDATE ON settlement_config
BEGIN SELECT RAISE(ABORT, 'settlement_config is append-only'); END;
CREATE TRIGGER settlement_config_append_only_delete BEFORE DELETE ON settlement_config
BEGIN SELECT RAISE(ABORT, 'settlement_config is append-only'); END;
