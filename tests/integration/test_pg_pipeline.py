"""PostgreSQL: batches decided ahead on cached balances, written with compare-and-set, two
at once (ADR 0016).

A commit must not overwrite a balance or a pending transfer another writer changed since
the decision read it, nor keep a refusal made on a stale balance; batches commit in
order; and a batch that waits for its turn behind one that fails must be decided again,
not written as decided. What both stores share is in
``tests/contract/test_ledger_pipeline_contract.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tally.adapters.postgres.ledger import PostgresLedgerStore
from tally.kernel.errors import RetryableError
from tally.ledger.model import PendingStatus, ResultCode, TransferKind, TransferRequest
from tests.conftest import PG_DSN, START
from tests.support.pipeline import HOUSE, WALLET, codes, move, posted

R = ResultCode


@pytest.fixture
def stores(pg_schema: str) -> Iterator[tuple[PostgresLedgerStore, PostgresLedgerStore]]:
    """Two writers on one database, as two processes would be."""
    mine = PostgresLedgerStore(PG_DSN, schema=pg_schema)
    other = PostgresLedgerStore(PG_DSN, schema=pg_schema)
    mine.create_accounts([WALLET, *HOUSE], START)
    try:
        yield mine, other
    finally:
        mine.close()
        other.close()


@pytest.fixture
def store(stores: tuple[PostgresLedgerStore, PostgresLedgerStore]) -> PostgresLedgerStore:
    return stores[0]


def test_a_balance_another_writer_changed_is_not_overwritten(
    stores: tuple[PostgresLedgerStore, PostgresLedgerStore],
) -> None:
    mine, other = stores
    assert codes(mine.apply([[move("fund", "h0", "w", 100)]], START)) == [[R.OK]]
    ahead = mine.decide([[move("bet", "w", "h3", 60)]], START)  # on w = 100, cached
    assert codes(other.apply([[move("cashout", "w", "h4", 70)]], START)) == [[R.OK]]
    with pytest.raises(RetryableError, match="changed by another writer"):
        mine.commit(ahead)
    assert mine.get_transfer("bet") is None  # nothing of the batch was written
    assert posted(mine, "w") == (70, 100)
    # Its retry (one step, under row locks) decides on the balance as it is.
    assert codes(mine.apply([[move("bet", "w", "h3", 60)]], START)) == [[R.EXCEEDS_CREDITS]]
    assert codes(mine.commit(mine.decide([[move("bet2", "w", "h3", 30)]], START))) == [[R.OK]]
    assert posted(mine, "w") == (100, 100)


def test_a_refusal_made_on_a_stale_balance_is_not_kept(
    stores: tuple[PostgresLedgerStore, PostgresLedgerStore],
) -> None:
    mine, other = stores
    assert codes(mine.commit(mine.decide([[move("bet", "w", "h3", 10)]], START))) == [
        [R.EXCEEDS_CREDITS]
    ]  # and w = 0 is now cached
    assert codes(other.apply([[move("fund", "h0", "w", 100)]], START)) == [[R.OK]]
    stale = mine.decide([[move("bet2", "w", "h3", 10)]], START)
    assert codes(stale.results) == [[R.EXCEEDS_CREDITS]]  # on the cached w = 0
    with pytest.raises(RetryableError):
        mine.commit(stale)
    assert codes(mine.apply([[move("bet2", "w", "h3", 10)]], START)) == [[R.OK]]
    assert posted(mine, "w") == (10, 100)


def test_a_pending_transfer_another_writer_resolved_is_not_resolved_again(
    stores: tuple[PostgresLedgerStore, PostgresLedgerStore],
) -> None:
    mine, other = stores
    hold = move("hold", "h0", "h1", 50, kind=TransferKind.PENDING)
    assert codes(mine.apply([[hold]], START)) == [[R.OK]]
    ahead = mine.decide(
        [[TransferRequest("post", kind=TransferKind.POST, pending_id="hold")]], START
    )
    # Voided, and another reservation alike made: the balances read as before.
    assert codes(
        other.apply(
            [
                [TransferRequest("void", kind=TransferKind.VOID, pending_id="hold")],
                [move("hold2", "h0", "h1", 50, kind=TransferKind.PENDING)],
            ],
            START,
        )
    ) == [[R.OK], [R.OK]]
    with pytest.raises(RetryableError):
        mine.commit(ahead)
    resolved = mine.get_transfer("hold")
    assert resolved is not None and resolved.status is PendingStatus.VOIDED
    assert mine.get_transfer("post") is None
    assert posted(mine, "h1") == (0, 0)


def test_a_batch_commits_only_after_the_batch_decided_before_it(
    store: PostgresLedgerStore,
) -> None:
    first = store.decide([[move("fund", "h0", "w", 100)]], START)
    second = store.decide([[move("bet", "w", "h3", 100)]], START)
    results: list[Any] = []
    behind = threading.Thread(target=lambda: results.append(store.commit(second)))
    behind.start()
    behind.join(0.5)
    assert behind.is_alive()  # its transfers may be copied; its balances wait
    assert store.get_transfer("bet") is None
    assert codes(store.commit(first)) == [[R.OK]]
    behind.join(10)
    assert not behind.is_alive()
    assert codes(results[0]) == [[R.OK]]
    assert posted(store, "w") == (100, 100)


def test_a_batch_waiting_behind_one_that_fails_is_decided_again(
    stores: tuple[PostgresLedgerStore, PostgresLedgerStore],
) -> None:
    mine, other = stores
    first = mine.decide([[move("fund", "h0", "w", 100)]], START)  # h0 = 0, cached
    second = mine.decide([[move("bet", "w", "h3", 60)]], START)  # on the funding
    results: list[Any] = []
    behind = threading.Thread(target=lambda: results.append(mine.commit(second)))
    behind.start()
    behind.join(0.3)
    assert codes(other.apply([[move("float", "h5", "h0", 1)]], START)) == [[R.OK]]
    with pytest.raises(RetryableError):
        mine.commit(first)  # h0 changed under it
    behind.join(10)
    assert not behind.is_alive()
    # Decided again, alone, on what the database holds: no funding, so no bet.
    assert codes(results[0]) == [[R.EXCEEDS_CREDITS]]
    assert mine.get_transfer("fund") is None
    assert posted(mine, "w") == (0, 0)
    # The writer goes on.
    assert codes(mine.commit(mine.decide([[move("fund", "h0", "w", 100)]], START))) == [[R.OK]]
    assert posted(mine, "w") == (0, 100)
