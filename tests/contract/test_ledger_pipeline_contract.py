"""Both stores decide a batch ahead while the batches before it are written (ADR 0015,
ADR 0016). What that must not change, on each: a batch decided ahead sees what the
batches before it did, though the database does not hold it yet; a one-step write in
between has it decided again; and the accounts it changed stay cached until it is
written, whatever the cache must forget to make room.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tally.kernel.limits import LedgerLimits
from tally.ledger.model import PendingStatus, ResultCode, TransferKind, TransferRequest
from tests.conftest import PG_DSN, START
from tests.support.pipeline import HOUSE, WALLET, codes, move, posted

R = ResultCode


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Opens a store of the kind, with a wallet and eight house accounts."""
    opened: list[Any] = []

    def open_(limits: LedgerLimits | None = None) -> Any:
        if request.param == "sqlite":
            from tally.adapters.sqlite.ledger import SqliteLedgerStore

            store: Any = SqliteLedgerStore(tmp_path / "ledger.sqlite", limits)
        else:
            from tally.adapters.postgres.ledger import PostgresLedgerStore

            schema = request.getfixturevalue("pg_schema")
            store = PostgresLedgerStore(PG_DSN, limits, schema=schema)
        opened.append(store)
        store.create_accounts([WALLET, *HOUSE], START)
        return store

    try:
        yield open_
    finally:
        for store in opened:
            store.close()


def test_a_batch_decided_ahead_sees_what_the_batch_before_it_did(open_store: Any) -> None:
    store = open_store()
    first = store.decide(
        [[move("fund", "h0", "w", 100), move("hold", "h1", "h2", 30, kind=TransferKind.PENDING)]],
        START,
    )
    second = store.decide(
        [
            [move("bet", "w", "h3", 100)],  # only the first batch's funding covers it
            [move("fund", "h0", "w", 100)],  # the same transfer again: it exists
            [TransferRequest("settle", kind=TransferKind.POST, pending_id="hold")],
            [move("fund", "h0", "w", 99)],  # the same id, other content
        ],
        START,
    )
    assert store.get_transfer("fund") is None  # neither is written yet
    assert codes(store.commit(first)) == [[R.OK, R.OK]]
    assert codes(store.commit(second)) == [
        [R.OK],
        [R.EXISTS],
        [R.OK],
        [R.EXISTS_WITH_DIFFERENT_AMOUNT],
    ]
    assert posted(store, "w") == (100, 100)
    hold = store.get_transfer("hold")
    assert hold is not None and hold.status is PendingStatus.POSTED
    assert posted(store, "h2") == (0, 30)
    assert all(
        total.debits_posted == total.credits_posted for total in store.totals_by_currency().values()
    )


def test_a_one_step_batch_in_between_has_the_batches_decided_ahead_decided_again(
    open_store: Any,
) -> None:
    """Settlement writes beside the ledger in its own transaction (``unit_of_work`` and
    ``apply_in``); a batch the writer decided before that must not overwrite it."""
    store = open_store()
    store.apply([[move("fund", "h0", "w", 100)]], START)
    ahead = store.decide([[move("bet", "w", "h3", 60)]], START)
    with store.unit_of_work() as conn:
        assert codes(store.apply_in(conn, [[move("fee", "w", "h4", 70)]], START)) == [[R.OK]]
    assert codes(store.commit(ahead)) == [[R.EXCEEDS_CREDITS]]  # 60 of the 30 left
    assert posted(store, "w") == (70, 100)
    assert posted(store, "h4") == (0, 70)
    assert posted(store, "h3") == (0, 0)


def test_accounts_a_batch_ahead_changed_stay_cached_until_it_is_written(
    open_store: Any,
) -> None:
    """The writer forgets its longest-held accounts past ``account_cache_max``; one a
    batch decided ahead changed would be read back from the database without that
    change."""
    store = open_store(LedgerLimits(account_cache_max=4))
    first = store.decide([[move("fund", "h0", "w", 100)]], START)
    # Six other accounts: the cache must make room, but not by forgetting w or h0.
    second = store.decide(
        [[move("a", "h1", "h2", 1), move("b", "h3", "h4", 1), move("c", "h5", "h6", 1)]],
        START,
    )
    third = store.decide([[move("bet", "w", "h7", 100)]], START)
    for decided in (first, second, third):
        assert all(r.code is R.OK for sub in store.commit(decided) for r in sub)
    assert posted(store, "w") == (100, 100)
    assert posted(store, "h0") == (100, 0)
