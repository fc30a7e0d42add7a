"""The embedded ledger decides a batch while the one before it commits (ADR 0015).

A batch decided ahead must see what the batches before it did, though the file does not
hold it yet; and when one of those cannot be written, or another transaction changes
balances in between, every batch decided on top of it must be decided again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tally.adapters.sqlite import ledger as sqlite_ledger
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.kernel.limits import LedgerLimits
from tally.ledger.model import (
    Account,
    AccountFlags,
    OwnerKind,
    PendingStatus,
    ResultCode,
    TransferKind,
    TransferRequest,
)
from tests.conftest import START

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
def store(tmp_path: Path) -> Iterator[SqliteLedgerStore]:
    s = SqliteLedgerStore(tmp_path / "ledger.sqlite")
    s.create_accounts([WALLET, *HOUSE], START)
    try:
        yield s
    finally:
        s.close()


def posted(store: SqliteLedgerStore, account_id: str) -> tuple[int, int]:
    balance = store.balance(account_id)
    assert balance is not None
    return balance.debits_posted, balance.credits_posted


def test_a_batch_decided_ahead_sees_what_the_batch_before_it_did(
    store: SqliteLedgerStore,
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
    assert all(
        total.debits_posted == total.credits_posted for total in store.totals_by_currency().values()
    )


def test_a_failed_commit_has_the_batches_decided_on_it_decided_again(
    store: SqliteLedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.decide([[move("fund", "h0", "w", 100)]], START)
    second = store.decide([[move("bet", "w", "h3", 60)]], START)
    write = sqlite_ledger.write
    failing = [first.writes]  # type: ignore[attr-defined]

    def write_failing_once(conn: Any, writes: Any) -> None:
        if failing and writes is failing[0]:
            failing.clear()
            raise OSError("disk I/O error")
        write(conn, writes)

    monkeypatch.setattr(sqlite_ledger, "write", write_failing_once)
    with pytest.raises(OSError):
        store.commit(first)
    # Decided again without the funding that never landed: the wallet cannot pay.
    assert codes(store.commit(second)) == [[R.EXCEEDS_CREDITS]]
    assert store.get_transfer("fund") is None
    assert posted(store, "w") == (0, 0)
    # The writer goes on; the next batches are decided on what the file holds.
    assert codes(store.commit(store.decide([[move("fund", "h0", "w", 100)]], START))) == [[R.OK]]
    assert codes(store.commit(store.decide([[move("bet", "w", "h3", 60)]], START))) == [[R.OK]]
    assert posted(store, "w") == (60, 100)


def test_a_one_step_batch_in_between_has_the_batches_decided_ahead_decided_again(
    store: SqliteLedgerStore,
) -> None:
    """Settlement writes beside the ledger in its own transaction (``unit_of_work`` and
    ``apply_in``); a batch the writer decided before that must not overwrite it."""
    store.apply([[move("fund", "h0", "w", 100)]], START)
    ahead = store.decide([[move("bet", "w", "h3", 60)]], START)
    with store.unit_of_work() as conn:
        assert codes(store.apply_in(conn, [[move("fee", "w", "h4", 70)]], START)) == [[R.OK]]
    assert codes(store.commit(ahead)) == [[R.EXCEEDS_CREDITS]]  # 60 of the 30 left
    assert posted(store, "w") == (70, 100)
    assert posted(store, "h4") == (0, 70)
    assert posted(store, "h3") == (0, 0)


def test_accounts_a_batch_ahead_changed_stay_cached_until_it_is_written(
    tmp_path: Path,
) -> None:
    """The writer forgets its longest-held accounts past ``account_cache_max``; one a
    batch decided ahead changed would be read back from the file without that change."""
    store = SqliteLedgerStore(tmp_path / "ledger.sqlite", LedgerLimits(account_cache_max=4))
    try:
        store.create_accounts([WALLET, *HOUSE], START)
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
    finally:
        store.close()
