"""The back-office HTTP API (FastAPI); build it with ``app.create_api``."""
