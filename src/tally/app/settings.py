"""One Settings object, built once from the environment (prefix ``TALLY_``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tally.kernel.errors import ConfigurationError
from tally.kernel.limits import LedgerLimits

Mode = Literal["embedded", "scaled"]
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/tally"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


@dataclass(frozen=True, slots=True)
class Settings:
    mode: Mode = "embedded"
    data_dir: Path = Path("data")
    # Embedded mode: the one SQLite file.
    sqlite_path: Path = Path("data/tally.sqlite")
    # Scaled mode: PostgreSQL for the ledger and read models.
    pg_dsn: str = DEFAULT_PG_DSN
    nats_url: str = DEFAULT_NATS_URL
    log_level: str = "INFO"
    log_json: bool = False
    ledger_limits: LedgerLimits = field(default_factory=LedgerLimits)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        mode = env.get("TALLY_MODE", "embedded")
        if mode not in ("embedded", "scaled"):
            raise ConfigurationError(f"TALLY_MODE must be 'embedded' or 'scaled', not {mode!r}")
        data_dir = Path(env.get("TALLY_DATA_DIR", "data"))
        return cls(
            mode=mode,  # type: ignore[arg-type]  # checked just above
            data_dir=data_dir,
            sqlite_path=Path(env.get("TALLY_SQLITE_PATH", str(data_dir / "tally.sqlite"))),
            pg_dsn=env.get("TALLY_PG_DSN", DEFAULT_PG_DSN),
            nats_url=env.get("TALLY_NATS_URL", DEFAULT_NATS_URL),
            log_level=env.get("TALLY_LOG_LEVEL", "INFO").upper(),
            log_json=env.get("TALLY_LOG_JSON", "0") in ("1", "true", "yes"),
        )
