-- Provider secrets, sealed with AES-256-GCM by the application before they get here.
CREATE TABLE provider_secrets (
    provider text NOT NULL,
    name text NOT NULL,
    sealed bytea NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    PRIMARY KEY (provider, name)
);
