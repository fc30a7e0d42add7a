"""What an export reads from the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from tally.ledger.model import Account, Transfer


class TransferSource(Protocol):
    def transfers_recorded_between(
        self, start: datetime, end: datetime, *, after: int = 0, limit: int = 1_000
    ) -> list[tuple[int, Transfer]]:
        """Transfers with ``start <= recorded_at < end`` in commit order, after ``after``."""
        ...

    def accounts(self, ids: Sequence[str]) -> list[Account]: ...

    def player_accounts(self) -> list[tuple[str, str]]:
        """Every player account as (account id, player id): what an export pseudonymises
        wherever it appears, not only in the accounts the exported transfers touch."""
        ...

    def close(self) -> None: ...
