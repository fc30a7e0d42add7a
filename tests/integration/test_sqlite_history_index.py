"""The embedded ledger's history index (ADR 0009): filled behind the writer, in bulk.

An account's history is read through ``account_postings`` up to its mark and from the
transfers after it. These tests check the index itself: when the writer takes transfers
in, that a file made before the index existed is migrated with its history, and that
the two parts of a read never miss or repeat a transfer.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from tally.adapters.migrate import MIGRATIONS_TABLE, load_migrations
from tally.adapters.sqlite.ledger import SqliteLedgerStore, connect
from tally.kernel.limits import LedgerLimits
from tally.ledger.model import Account, OwnerKind, TransferRequest
from tests.conftest import START

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


def test_the_writer_takes_transfers_in_once_the_tail_reaches_the_lag(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    store = SqliteLedgerStore(path, LedgerLimits(history_index_lag=10))
    try:
        store.create_accounts(ACCOUNTS, START)
        store.apply([_transfers(0, 9)], START)
        assert _mark(path) == (0, 0)  # 9 behind: not yet
        store.apply([_transfers(9, 3)], START)
        assert _mark(path) == (12, 24)  # both sides of all 12, in the batch's transaction
        store.apply([_transfers(12, 5)], START)
        assert _mark(path) == (12, 24)
        # a0 is the debit of t0, t4, t8, ... and the credit of t3, t7, t11, ...
        ids = []
        cursor = None
        while True:
            page = store.account_transfers("a0", cursor=cursor, limit=3)
            ids += [t.id for t in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        expected = [f"t{i:04d}" for i in range(17) if i % 4 == 0 or (i + 1) % 4 == 0]
        assert ids == expected  # across the mark: each once, in order
        balance = store.balance("a0", START + timedelta(seconds=1))
        assert balance is not None
        assert balance.debits_posted == sum(i + 1 for i in range(17) if i % 4 == 0)
        assert balance.credits_posted == sum(i + 1 for i in range(17) if (i + 1) % 4 == 0)
    finally:
        store.close()


def test_a_file_made_before_the_history_index_is_migrated_with_its_history(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite"
    # The ledger as its first migration left it, with transfers written then.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(MIGRATIONS_TABLE)
    first = load_migrations("tally.adapters.sqlite.migrations", "ledger")[0]
    conn.executescript(first.sql)
    conn.execute("INSERT INTO schema_migrations VALUES ('ledger', 1, ?)", (first.name,))
    conn.close()
    # Transfers written then: straight rows, as the first schema held them.
    conn = sqlite3.connect(path, isolation_level=None)
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
