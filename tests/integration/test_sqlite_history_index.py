"""The embedded ledger's history index (ADR 0009): filled behind the writer, in bulk,
by a thread of its own (ADR 0013).

An account's history is read through ``account_postings`` up to its mark and from the
transfers after it. These tests check the index itself: when the indexer takes
transfers in, that a file made before the index existed is migrated with its history,
and that the two parts of a read never miss or repeat a transfer, even while the
indexer runs. And, since the writer now decides outside the write lock, that a commit by
another ledger store in between makes it decide again, and one by another component
that shares the file does not.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tally.adapters.sqlite.connection import connect, immediate
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.kernel.limits import LedgerLimits
from tally.ledger.model import Account, AccountFlags, OwnerKind, ResultCode, TransferRequest
from tests.conftest import START
from tests.support.ledger_files import ledger_file_at

DEBITS_WITHIN_CREDITS = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
ACCOUNTS = [Account(f"a{i}", OwnerKind.OPERATOR, f"o{i}", "EUR", "test") for i in range(4)]


def _transfers(first: int, count: int) -> list[TransferRequest]:
    return [
        TransferRequest(f"t{i:04d}", f"a{i % 4}", f"a{(i + 1) % 4}", i + 1, "EUR", "test")
        for i in range(first, first + count)
    ]


def _mark(path: Path) -> tuple[int, int]:
    conn = connect(path)
    try:
        (mark,) = conn.execute("SELECT indexed_through FROM account_postings_mark").fetchone()
        (entries,) = conn.execute("SELECT COUNT(*) FROM account_postings").fetchone()
        return mark, entries
    finally:
        conn.close()


def _history(store: SqliteLedgerStore, account_id: str, *, page_size: int) -> list[str]:
    """The account's transfer ids, read page by page to the end."""
    ids: list[str] = []
    cursor = None
    while True:
        page = store.account_transfers(account_id, cursor=cursor, limit=page_size)
        ids += [t.id for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids


def test_the_indexer_takes_transfers_in_once_the_tail_reaches_the_lag(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    store = SqliteLedgerStore(path, LedgerLimits(history_index_lag=10))
    try:
        store.create_accounts(ACCOUNTS, START)
        store.apply([_transfers(0, 9)], START)
        assert store.wait_for_history_index(5)
        assert _mark(path) == (0, 0)  # 9 behind: not yet
        store.apply([_transfers(9, 3)], START)
        assert store.wait_for_history_index(5)
        assert _mark(path) == (12, 24)  # both sides of all 12, in one round
        store.apply([_transfers(12, 5)], START)
        assert store.wait_for_history_index(5)
        assert _mark(path) == (12, 24)
        # a0 is the debit of t0, t4, t8, ... and the credit of t3, t7, t11, ...
        ids = _history(store, "a0", page_size=3)
        expected = [f"t{i:04d}" for i in range(17) if i % 4 == 0 or (i + 1) % 4 == 0]
        assert ids == expected  # across the mark: each once, in order
        balance = store.balance("a0", START + timedelta(seconds=1))
        assert balance is not None
        assert balance.debits_posted == sum(i + 1 for i in range(17) if i % 4 == 0)
        assert balance.credits_posted == sum(i + 1 for i in range(17) if (i + 1) % 4 == 0)
    finally:
        store.close()


def test_the_indexer_copies_the_wal_into_the_file_when_asked_to(tmp_path: Path) -> None:
    """``checkpoint_behind_s``: the indexer's thread checkpoints (a gateway's commits then
    seldom do); without it, only SQLite's own checkpoint at 64 MiB of WAL would."""
    grown = {}
    for every in (0.0, 0.001):
        path = tmp_path / f"every-{every}.sqlite"
        store = SqliteLedgerStore(path, LedgerLimits(checkpoint_behind_s=every))
        try:
            store.create_accounts(ACCOUNTS, START)
            before = path.stat().st_size
            store.commit(store.decide([_transfers(0, 200)], START))  # as the writer does
            assert store.wait_for_history_index(5)
            grown[every] = path.stat().st_size - before
        finally:
            store.close()
    assert grown[0.0] == 0 and grown[0.001] > 0


def test_a_file_made_before_the_history_index_is_migrated_with_its_history(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite"
    # The ledger as its first migration left it, with transfers written then: straight
    # rows, as the first schema held them.
    conn = ledger_file_at(path, 1)
    for a in ACCOUNTS:
        conn.execute(
            "INSERT INTO accounts (id, owner_kind, owner_id, currency, purpose, created_at) "
            "VALUES (?, 'operator', ?, 'EUR', 'test', 0)",
            (a.id, a.owner_id),
        )
    for seq, (dr, cr) in enumerate([("a0", "a1"), ("a1", "a0"), ("a2", "a0")], start=1):
        conn.execute(
            "INSERT INTO transfers (seq, id, kind, debit_account_id, credit_account_id, "
            "amount, currency, code, occurred_at, recorded_at) "
            "VALUES (?, ?, 'single', ?, ?, 5, 'EUR', 'old', 0, 0)",
            (seq, f"old{seq}", dr, cr),
        )
    conn.close()

    store = SqliteLedgerStore(path, LedgerLimits(history_index_lag=1_000))  # migrates
    try:
        assert _mark(path) == (3, 6)
        assert [t.id for t in store.account_transfers("a0").items] == ["old1", "old2", "old3"]
        store.create_accounts(ACCOUNTS, START)
        store.apply([_transfers(0, 1)], START)  # t0000: a0 -> a1, in the tail
        assert [t.id for t in store.account_transfers("a0").items] == [
            "old1",
            "old2",
            "old3",
            "t0000",
        ]
    finally:
        store.close()


def test_a_piece_taken_in_before_a_crash_is_not_read_twice_nor_refused_later(
    tmp_path: Path,
) -> None:
    """The pieces of a tail are transactions of their own; only the last moves the mark.
    Entries of a piece whose round then died are past the mark: readers do not count
    them (the tail scan has them), and the next round takes them in again quietly."""
    path = tmp_path / "ledger.sqlite"
    store = SqliteLedgerStore(path, LedgerLimits(history_index_lag=1_000))
    try:
        store.create_accounts(ACCOUNTS, START)
        store.apply([_transfers(0, 12)], START)
    finally:
        store.close()
    conn = connect(path)
    SqliteLedgerStore.copy_tail(conn, 0, 12, 2)
    with immediate(conn):  # a first piece (accounts before a2), then a crash
        SqliteLedgerStore.index_piece(conn, 12, ("", 0), ("a2", 0))
    conn.close()
    assert _mark(path) == (0, 12)  # a0 and a1: both sides of 6 transfers each

    a0 = [f"t{i:04d}" for i in range(17) if i % 4 == 0 or (i + 1) % 4 == 0]
    store = SqliteLedgerStore(path, LedgerLimits(history_index_lag=10, history_index_pieces=2))
    try:
        assert _history(store, "a0", page_size=2) == a0[:6]
        balance = store.balance("a0", START + timedelta(seconds=1))
        assert balance is not None
        assert balance.debits_posted == sum(i + 1 for i in range(12) if i % 4 == 0)
        store.commit(store.decide([_transfers(12, 5)], START))
        assert store.wait_for_history_index(5)
        assert _mark(path) == (17, 34)
        assert _history(store, "a0", page_size=3) == a0
    finally:
        store.close()


def _house_pieces(path: Path, transfers: int) -> tuple[list[Any], list[int]]:
    """A tail of ``transfers``, each with house account a0 as one side, taken in by 4
    pieces: their bounds, and the entries each took in."""
    store = SqliteLedgerStore(path, LedgerLimits(history_index_lag=100_000, history_index_pieces=4))
    try:
        store.create_accounts(ACCOUNTS, START)
        house = [
            TransferRequest(f"t{i:05d}", "a0", f"a{1 + i % 3}", i + 1, "EUR", "test")
            for i in range(transfers)
        ]
        store.apply([house], START)
        conn = connect(path)
        pieces = SqliteLedgerStore.copy_tail(conn, 0, transfers, 4)
        sizes: list[int] = []
        for lo, hi in pieces:
            with immediate(conn):
                SqliteLedgerStore.index_piece(conn, transfers, lo, hi)
                (entries,) = conn.execute("SELECT COUNT(*) FROM account_postings").fetchone()
            sizes.append(entries - sum(sizes))
        conn.close()
    finally:
        store.close()
    assert _mark(path) == (transfers, 2 * transfers)  # each entry once; the mark moved
    return pieces, sizes


def test_pieces_take_in_as_many_entries_each_though_one_account_is_in_every_transfer(
    tmp_path: Path,
) -> None:
    """Pieces split the tail's entries by key (account, seq), not by account: a house
    account on one side of every transfer is cut across pieces, so no piece holds the
    file's write lock for half the tail while the others are short."""
    pieces, sizes = _house_pieces(tmp_path / "ledger.sqlite", 40)
    assert sizes == [20, 20, 20, 20]  # 80 entries: 40 of a0, 40 of a1..a3
    assert [lo for lo, _ in pieces] == [("", 0), ("a0", 21), ("a1", 1), ("a2", 20)]


def test_a_long_tail_is_cut_into_even_pieces(tmp_path: Path) -> None:
    """The bounds are counted on the sorted copy of the tail: a long tail's pieces are
    even to the entry, the last taking what is left."""
    pieces, sizes = _house_pieces(tmp_path / "ledger.sqlite", 3_001)
    assert sizes == [1_501, 1_501, 1_501, 1_499]
    assert sum(1 for lo, _ in pieces if lo[0] == "a0") == 1  # a0 is cut across two


@pytest.mark.parametrize("pieces", [1, 3])
def test_reads_while_the_indexer_takes_transfers_in_never_miss_or_repeat_one(
    tmp_path: Path, pieces: int
) -> None:
    """The indexer runs in its own thread (ADR 0013), a tail in one transaction or in
    pieces by account (ADR 0017): a history read racing its rounds, page after page,
    still gives each of the account's transfers once, in order."""
    path = tmp_path / "ledger.sqlite"
    store = SqliteLedgerStore(path, LedgerLimits(history_index_lag=20, history_index_pieces=pieces))
    total = 1_400
    expected = [f"t{i:04d}" for i in range(total) if i % 4 == 0 or (i + 1) % 4 == 0]
    written = threading.Event()
    reads: list[int] = []
    problems: list[str] = []

    def read_until_written() -> None:
        while True:
            last = written.is_set()
            ids = _history(store, "a0", page_size=7)
            if ids != expected[: len(ids)]:
                problems.append(f"read {len(reads)}: {ids[:3]}... is not a prefix")
            reads.append(len(ids))
            if last:
                return

    try:
        store.create_accounts(ACCOUNTS, START)
        reader = threading.Thread(target=read_until_written)
        reader.start()
        for first in range(0, total, 7):
            # As the ledger's writer does: the indexer's thread takes the tail in.
            store.commit(store.decide([_transfers(first, 7)], START))
        written.set()
        reader.join(timeout=60)
        assert not problems, problems
        assert reads[-1] == len(expected)
        assert len(reads) > 3  # the reads did race the writes and the rounds
        assert store.wait_for_history_index(5)
        mark, entries = _mark(path)
        assert total - mark < 20 and entries == 2 * mark
    finally:
        store.close()


def test_a_batch_decided_before_another_writer_commits_is_decided_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer decides outside the write lock (ADR 0013, 0015). If another connection
    commits between its decision and its transaction, the decision may rest on balances
    that are no longer so: it must be made again, or a rule breaks and a write is lost."""
    path = tmp_path / "ledger.sqlite"
    first = SqliteLedgerStore(path)
    second = SqliteLedgerStore(path)
    wallet = Account("w", OwnerKind.PLAYER, "p", "EUR", "wallet", DEBITS_WITHIN_CREDITS)
    try:
        first.create_accounts([*ACCOUNTS, wallet], START)
        first.apply([[TransferRequest("fund", "a0", "w", 100, "EUR", "fund")]], START)
        decide = first._decide
        spent = []

        def decide_then_another_writer_spends(*args: Any) -> Any:
            decided = decide(*args)
            if not spent:  # once: the decision made again must not be raced
                spent.append(
                    second.apply([[TransferRequest("spend", "w", "a1", 100, "EUR", "play")]], START)
                )
            return decided

        monkeypatch.setattr(first, "_decide", decide_then_another_writer_spends)
        bet_batch = [[TransferRequest("bet", "w", "a2", 60, "EUR", "play")]]
        [[bet]] = first.commit(first.decide(bet_batch, START))
        assert [[r.code for r in sub] for sub in spent[0]] == [[ResultCode.OK]]
        assert bet.code is ResultCode.EXCEEDS_CREDITS  # decided on 100 it would be OK
        balance = second.balance("w")
        assert balance is not None
        assert (balance.debits_posted, balance.credits_posted) == (100, 100)
        assert first.get_transfer("bet") is None
    finally:
        first.close()
        second.close()


def test_a_commit_by_another_component_of_the_file_keeps_the_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event log and the wallet marks share the ledger's file and commit beside it
    all the time. Those commits change no balance: the writer keeps its caches and its
    decision (before the ledger generation, each one made it decide every batch twice)."""
    path = tmp_path / "ledger.sqlite"
    store = SqliteLedgerStore(path)
    other = connect(path)
    wallet = Account("w", OwnerKind.PLAYER, "p", "EUR", "wallet", DEBITS_WITHIN_CREDITS)
    try:
        other.execute("CREATE TABLE another_component (x INTEGER)")
        store.create_accounts([*ACCOUNTS, wallet], START)
        store.apply([[TransferRequest("fund", "a0", "w", 100, "EUR", "fund")]], START)
        decide = store._decide
        decisions = []

        def decide_then_another_component_commits(*args: Any) -> Any:
            decisions.append(args)
            decided = decide(*args)
            other.execute("INSERT INTO another_component VALUES (1)")
            return decided

        monkeypatch.setattr(store, "_decide", decide_then_another_component_commits)
        bet_batch = [[TransferRequest("bet", "w", "a2", 60, "EUR", "play")]]
        [[bet]] = store.commit(store.decide(bet_batch, START))
        assert bet.code is ResultCode.OK
        assert len(decisions) == 1
        assert store._balances["w"].debits_posted == 60  # the cache is kept, and current
        balance = store.balance("w")
        assert balance is not None
        assert (balance.debits_posted, balance.credits_posted) == (60, 100)
    finally:
        other.close()
        store.close()
