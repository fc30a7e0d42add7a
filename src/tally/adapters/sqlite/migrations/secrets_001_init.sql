-- Provider secrets, sealed with AES-256-GCM by the application before they get here.
CREATE TABLE provider_secrets (
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    sealed BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (provider, name)
);
