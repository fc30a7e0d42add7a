"""Row <-> domain mapping of settlement state shared by the SQL stores.

SQLite and PostgreSQL differ only in how a timestamp is stored; each passes its converter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from tally.adapters.sql.rows import TimeIn, TimeOut
from tally.kernel.errors import PermanentError
from tally.ledger.model import TransferResult
from tally.settlement.contracts import Totals
from tally.settlement.engine import Bucket, Effect, WaitingRollback

BUCKET_COLUMNS = "contract_id, version, provider, operator, period, game_type, currency, region"
ORPHAN_COLUMNS = (
    "original_key, rollback_key, occurred_at, operator, currency, contract_id, period, period_start"
)
EFFECT_COLUMNS = (
    f"key, {BUCKET_COLUMNS}, period_start, turnover, wins, bonuses, jackpot_contributions, "
    "commission, late_of, rolled_back_by"
)


def bucket_values(b: Bucket) -> tuple[Any, ...]:
    return (
        b.contract_id,
        b.version,
        b.provider,
        b.operator,
        b.period,
        b.game_type,
        b.currency,
        b.region,
    )


def effect_row(e: Effect, time_in: TimeIn) -> tuple[Any, ...]:
    d = e.delta
    commission = (
        orjson.dumps([[a, str(x)] for a, x in e.commission]).decode() if e.commission else None
    )
    return (
        e.key,
        *bucket_values(e.bucket),
        time_in(e.period_start),
        d.turnover,
        d.wins,
        d.bonuses,
        d.jackpot_contributions,
        commission,
        e.late_of or None,
        e.rolled_back_by or None,
    )


def effect_from_row(row: Sequence[Any], time_out: TimeOut) -> Effect:
    key, bucket = row[0], Bucket(*row[1:9])
    start, turnover, wins, bonuses, jackpot, commission, late_of, rolled_back_by = row[9:]
    shares = tuple((a, Decimal(x)) for a, x in orjson.loads(commission)) if commission else ()
    return Effect(
        key,
        bucket,
        time_out(start),
        Totals(turnover, wins, bonuses, jackpot),
        shares,
        late_of or "",
        rolled_back_by or "",
    )


def require_posted(results: Sequence[TransferResult]) -> None:
    """Settlement posts between accounts without balance rules: a refusal is a bug, and
    the whole commit (with its log position) must roll back."""
    refused = [r for r in results if not r.code.ok]
    if refused:
        raise PermanentError(f"the ledger refused settlement transfers: {refused[:3]}")


def orphan_row(w: WaitingRollback, time_in: TimeIn) -> tuple[Any, ...]:
    def at(when: datetime | None) -> Any:
        return None if when is None else time_in(when)

    return (
        w.ref,
        w.key,
        at(w.occurred_at),
        w.operator,
        w.currency,
        w.contract_id,
        w.period,
        at(w.period_start),
    )


def orphan_from_row(row: Sequence[Any], time_out: TimeOut) -> WaitingRollback:
    """NULLs (rows kept before their period was recorded) stay ``None``: unknown."""
    ref, key, occurred_at, operator, currency, contract_id, period, start = row
    return WaitingRollback(
        ref,
        key,
        None if occurred_at is None else time_out(occurred_at),
        operator,
        currency,
        contract_id,
        period,
        None if start is None else time_out(start),
    )
