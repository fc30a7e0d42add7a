-- Versioned settlement configuration (contracts, agents, placements, FX rates) as
-- append-only JSON documents.
CREATE TABLE settlement_config (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('contract', 'agent', 'placement', 'fx_rate')),
    key text NOT NULL,
    document jsonb NOT NULL,
    recorded_at timestamptz NOT NULL,
    UNIQUE (kind, key)
);
CREATE FUNCTION settlement_config_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'settlement_config is append-only';
END $$;
CREATE TRIGGER settlement_config_append_only BEFORE UPDATE OR DELETE ON settlement_config
    FOR EACH ROW EXECUTE FUNCTION settlement_config_append_only();
