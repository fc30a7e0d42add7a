"""Settlement in the embedded SQLite file: configuration documents and settlement state."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from tally.adapters.sql.settlement_rows import require_posted
from tally.adapters.sqlite import settlement_state as state
from tally.adapters.sqlite.connection import connect, immediate
from tally.adapters.sqlite.ledger import SqliteLedgerStore, migrate
from tally.kernel.clock import to_micros
from tally.ledger.codec import dumps
from tally.ledger.model import Account, TransferRequest
from tally.settlement.engine import BatchOutcome, Closing, Effect, OpenFigures
from tally.settlement.ports import Orphan, StoredStatement


class SqliteConfigDocuments:
    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, "settlement")

    def get(self, kind: str, key: str) -> Mapping[str, Any] | None:
        with self._lock:
            return self.get_in(self._conn, kind, key)

    @contextmanager
    def unit_of_work(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._conn, busy="settlement configuration") as conn:
            yield conn

    def get_in(self, tx: sqlite3.Connection, kind: str, key: str) -> Mapping[str, Any] | None:
        row = tx.execute(
            "SELECT document FROM settlement_config WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def insert_in(
        self,
        tx: sqlite3.Connection,
        kind: str,
        key: str,
        document: Mapping[str, Any],
        now: datetime,
    ) -> None:
        tx.execute(
            "INSERT INTO settlement_config (kind, key, document, recorded_at) VALUES (?, ?, ?, ?)",
            (kind, key, dumps(dict(document)), to_micros(now)),
        )

    def all(self, kind: str) -> list[Mapping[str, Any]]:
        with self._lock:
            found = self._conn.execute(
                "SELECT document FROM settlement_config WHERE kind = ? ORDER BY seq", (kind,)
            ).fetchall()
        return [json.loads(text) for (text,) in found]

    def revision(self) -> int:
        with self._lock:
            (revision,) = self._conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM settlement_config"
            ).fetchone()
        return int(revision)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class SqliteSettlementStore:
    """Settlement state in the ledger's SQLite file, committed in the ledger's transactions."""

    def __init__(self, ledger: SqliteLedgerStore) -> None:
        self.ledger = ledger
        self._read = connect(ledger.path)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._read, "settlement")

    def _post(
        self,
        conn: sqlite3.Connection,
        accounts: Iterable[Account],
        transfers: list[TransferRequest],
        now: datetime,
    ) -> None:
        self.ledger.create_accounts_in(conn, list(accounts), now)
        [results] = self.ledger.apply_in(conn, [transfers], now)
        require_posted(results)

    def load_figures(self) -> OpenFigures:
        with self._lock:
            return state.load_figures(self._read)

    def position(self, consumer: str) -> int:
        with self._lock:
            return state.position(self._read, consumer)

    def load_effects(self, keys: Iterable[str]) -> dict[str, Effect]:
        with self._lock:
            return state.load_effects(self._read, keys)

    def load_orphans(self, keys: Iterable[str]) -> dict[str, str]:
        with self._lock:
            return state.load_orphans(self._read, keys)

    def commit_batch(
        self,
        consumer: str,
        position: int,
        out: BatchOutcome,
        figures: OpenFigures,
        now: datetime,
    ) -> None:
        with self.ledger.unit_of_work() as conn:
            self._post(conn, out.accounts.values(), out.transfers, now)
            state.save_batch(conn, out, figures)
            state.save_problems(conn, out.problems, now)
            state.save_position(conn, consumer, position)

    def commit_close(
        self,
        closing: Closing,
        figures: OpenFigures,
        now: datetime,
        within: Callable[[sqlite3.Connection], object],
    ) -> None:
        with self.ledger.unit_of_work() as conn:
            self._post(conn, closing.accounts.values(), closing.transfers, now)
            state.save_closing(conn, closing.statement, figures, now)
            within(conn)

    def statements(self) -> list[StoredStatement]:
        with self._lock:
            return state.statements(self._read)

    def orphans(self) -> list[Orphan]:
        with self._lock:
            return state.orphans(self._read)

    def problems(self) -> list[tuple[str, str, datetime]]:
        with self._lock:
            return state.problems(self._read)

    def close(self) -> None:
        with self._lock:
            self._read.close()
