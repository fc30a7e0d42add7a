-- The risk watch: its log position and detectors' state (one row per consumer, written
-- with the position in one transaction), the outbox of signals not yet handed to the
-- alerts, certified game figures, and the latest forecast.
CREATE TABLE risk_watch_state (
    consumer TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    state BLOB NOT NULL,
    committed_at INTEGER NOT NULL
);
CREATE TABLE risk_watch_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX risk_watch_outbox_consumer ON risk_watch_outbox (consumer, id);
CREATE TABLE risk_games (
    game TEXT PRIMARY KEY,
    certified_rtp TEXT NOT NULL,
    volatility TEXT NOT NULL,
    max_win_multiplier INTEGER NOT NULL
);
CREATE TABLE risk_forecast_fit (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fitted_at INTEGER NOT NULL
);
CREATE TABLE risk_forecasts (
    series TEXT NOT NULL,
    hour INTEGER NOT NULL,
    mean REAL NOT NULL,
    lo80 REAL NOT NULL,
    hi80 REAL NOT NULL,
    lo95 REAL NOT NULL,
    hi95 REAL NOT NULL,
    PRIMARY KEY (series, hour)
);
