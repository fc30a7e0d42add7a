"""Read-side queries over the embedded ledger's tables, for exports."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from tally.adapters.sql import rows
from tally.adapters.sqlite.connection import connect
from tally.kernel.clock import from_micros, to_micros
from tally.ledger.model import Account, OwnerKind, Transfer


class SqliteTransferSource:
    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)

    def transfers_recorded_between(
        self, start: datetime, end: datetime, *, after: int = 0, limit: int = 1_000
    ) -> list[tuple[int, Transfer]]:
        found = self._conn.execute(
            f"SELECT seq, {rows.TRANSFER_COLUMNS} FROM transfers "
            "WHERE recorded_at >= ? AND recorded_at < ? AND seq > ? ORDER BY seq LIMIT ?",
            (to_micros(start), to_micros(end), after, limit),
        ).fetchall()
        return [(int(r[0]), rows.transfer_from_row(r[1:], from_micros)) for r in found]

    def accounts(self, ids: Sequence[str]) -> list[Account]:
        found = self._conn.execute(
            f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts "
            "WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (json.dumps(list(ids)),),
        ).fetchall()
        return [rows.account_from_row(r)[0] for r in found]

    def player_accounts(self) -> list[tuple[str, str]]:
        found = self._conn.execute(
            "SELECT id, owner_id FROM accounts WHERE owner_kind = ? ORDER BY id",
            (OwnerKind.PLAYER.value,),
        ).fetchall()
        return [(str(a), str(o)) for a, o in found]

    def close(self) -> None:
        self._conn.close()
