"""PostgreSQL: batches decided ahead on cached balances, written with compare-and-set, two
at once (ADR 0016).

A batch decided ahead must see what the batches before it did; its commit must not
overwrite a balance or a pending transfer another writer changed since it was read, nor
keep a refusal made on a stale balance; and a batch that waits for its turn behind one
that fails must be decided again, not written as decided.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tally.adapters.postgres.ledger import PostgresLedgerStore
from tally.kernel.errors import RetryableError
from tally.ledger.model import (
    Account,
    AccountFlags,
    OwnerKind,
    PendingStatus,
    ResultCode,
    TransferKind,
    TransferRequest,
)
from tests.conftest import PG_DSN, START

R = ResultCode
WALLET = Account(
    "w", OwnerKind.PLAYER, "p", "EUR", "wallet", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
)
HOUSE = [Account(f"h{i}", OwnerKind.OPERATOR, "o", "EUR", "float") for i in range(8)]


def move(tid: str, dr: str, cr: str, amount: int, **kw: Any) -> TransferRequest:
    return TransferRequest(tid, dr, cr, amount, "EUR", "play", **kw)


def codes(results: list[list[Any]]) -> list[list[ResultCode]]:
    return [[r.code for r in sub] for sub in results]


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


def posted(store: PostgresLedgerStore, account_id: str) -> tuple[int, int]:
    balance = store.balance(account_id)
    assert balance is not None
    return balance.debits_posted, balance.credits_posted


def test_a_batch_decided_ahead_sees_what_the_batch_before_it_did(
    store: PostgresLedgerStore,
) -> None:
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


def test_a_one_step_batch_in_between_has_the_batches_decided_ahead_decided_again(
    store: PostgresLedgerStore,
) -> None:
    store.apply([[move("fund", "h0", "w", 100)]], START)
    ahead = store.decide([[move("bet", "w", "h3", 60)]], START)
    with store.unit_of_work() as conn:
        assert codes(store.apply_in(conn, [[move("fee", "w", "h4", 70)]], START)) == [[R.OK]]
    assert codes(store.commit(ahead)) == [[R.EXCEEDS_CREDITS]]  # 60 of the 30 left
    assert posted(store, "w") == (70, 100)
    assert posted(store, "h4") == (0, 70)
    assert posted(store, "h3") == (0, 0)
