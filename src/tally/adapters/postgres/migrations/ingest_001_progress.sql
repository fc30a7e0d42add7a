-- How far each imported batch file got: a re-run resumes after lines_done.
CREATE TABLE import_progress (
    file_id TEXT PRIMARY KEY,  -- the file's SHA-256
    name TEXT NOT NULL,
    provider TEXT NOT NULL,
    lines_done INTEGER NOT NULL,
    counts JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    finished BOOLEAN NOT NULL
);
