"""Read-side queries over the PostgreSQL ledger's tables, for exports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from tally.adapters.postgres.connection import Link, connect_kwargs
from tally.adapters.postgres.params import ANY_TEXTS, texts
from tally.adapters.sql import rows
from tally.ledger.model import Account, OwnerKind, Transfer


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class PostgresTransferSource:
    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        self._link = Link(dsn, autocommit=True, **connect_kwargs(schema))

    def transfers_recorded_between(
        self, start: datetime, end: datetime, *, after: int = 0, limit: int = 1_000
    ) -> list[tuple[int, Transfer]]:
        found = self._link.conn.execute(
            f"SELECT seq, {rows.TRANSFER_COLUMNS} FROM transfers "
            "WHERE recorded_at >= %s AND recorded_at < %s AND seq > %s ORDER BY seq LIMIT %s",
            (start, end, after, limit),
        ).fetchall()
        return [(int(r[0]), rows.transfer_from_row(r[1:], _utc)) for r in found]

    def accounts(self, ids: Sequence[str]) -> list[Account]:
        found = self._link.conn.execute(
            f"SELECT {rows.ACCOUNT_COLUMNS} FROM accounts WHERE id = {ANY_TEXTS} ORDER BY id",
            (texts(ids),),
        ).fetchall()
        return [rows.account_from_row(r)[0] for r in found]

    def player_accounts(self) -> list[tuple[str, str]]:
        found = self._link.conn.execute(
            "SELECT id, owner_id FROM accounts WHERE owner_kind = %s ORDER BY id",
            (OwnerKind.PLAYER.value,),
        ).fetchall()
        return [(str(a), str(o)) for a, o in found]

    def close(self) -> None:
        self._link.close()
