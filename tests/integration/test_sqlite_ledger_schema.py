"""The embedded ledger's schema checks: the second line of defence behind the engine.

Migration 3 rewrote the transfers table's checks without IN lists (they cost more per
insert than the row itself), and migration 4 moved balances and their rules apart from
account definitions (ADR 0012). These tests hold the database to the same refusals and
show that a file written before each keeps its transfers and accounts.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tally.adapters.sqlite.connection import connect
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.ledger.model import (
    Account,
    OwnerKind,
    PendingStatus,
    ResultCode,
    TransferKind,
    TransferRequest,
)
from tests.conftest import START
from tests.support.ledger_files import ledger_file_at

COLUMNS = (
    "id, kind, debit_account_id, credit_account_id, amount, currency, code, status, "
    "occurred_at, recorded_at"
)
GOOD: dict[str, Any] = {
    "id": "t1",
    "kind": "pending",
    "debit_account_id": "a",
    "credit_account_id": "b",
    "amount": 5,
    "currency": "EUR",
    "code": "c",
    "status": "pending",
    "occurred_at": 0,
    "recorded_at": 0,
}


def _insert(conn: sqlite3.Connection, **changes: Any) -> None:
    row = {**GOOD, **changes}
    conn.execute(
        f"INSERT INTO transfers ({COLUMNS}) VALUES ({', '.join('?' * len(row))})",
        tuple(row[c.strip()] for c in COLUMNS.split(",")),
    )


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    SqliteLedgerStore(tmp_path / "ledger.sqlite").close()  # migrated to the latest
    return connect(tmp_path / "ledger.sqlite")


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": "refund"},
        {"kind": "SINGLE"},
        {"status": "done"},
        {"status": ""},
        {"amount": 0},
        {"amount": -1},
        {"credit_account_id": "a"},
    ],
    ids=lambda c: ",".join(f"{k}={v!r}" for k, v in c.items()),
)
def test_the_database_refuses_what_the_engine_refuses(
    conn: sqlite3.Connection, changes: dict[str, Any]
) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        _insert(conn, **changes)
    assert conn.execute("SELECT COUNT(*) FROM transfers").fetchone() == (0,)


@pytest.mark.parametrize("kind", ["single", "pending", "post", "void"])
@pytest.mark.parametrize("status", [None, "pending", "posted", "voided", "expired"])
def test_the_database_takes_every_kind_and_state(
    conn: sqlite3.Connection, kind: str, status: str | None
) -> None:
    _insert(conn, kind=kind, status=status)
    assert conn.execute("SELECT kind, status FROM transfers").fetchall() == [(kind, status)]


def test_a_file_from_before_the_rewrite_keeps_its_transfers(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    old = ledger_file_at(path, 2)
    _insert(old, id="t1", kind="pending", status="voided")
    _insert(old, id="t2", kind="single", status=None)
    old.execute("DELETE FROM transfers WHERE id = 't1'")
    _insert(old, id="t3", kind="void", status=None)
    before = old.execute("SELECT * FROM transfers ORDER BY seq").fetchall()
    old.close()

    SqliteLedgerStore(path).close()  # migrates

    conn = connect(path)
    assert conn.execute("SELECT * FROM transfers ORDER BY seq").fetchall() == before
    assert [seq for seq, *_ in before] == [2, 3]
    with pytest.raises(sqlite3.IntegrityError):
        _insert(conn, id="t4", kind="refund")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        _insert(conn, id="t2")
    plan = " ".join(
        str(row)
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM transfers "
            "WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= 5"
        )
    )
    assert "transfers_due" in plan


def test_balances_apart_keep_every_account_and_figure(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    old = ledger_file_at(path, 3)
    accounts = [
        ("w1", "player", "p1", "EUR", "wallet", 1, '{"k": "v"}', 7, 0, 40, 0, 100),
        ("bank", "platform", "bank", "EUR", "funding", 0, None, 8, 0, 100, 0, 40),
        ("h1", "operator", "o1", "USD", "house", 2, None, 9, 3, 10, 0, 0),
    ]
    old.executemany(
        "INSERT INTO accounts (id, owner_kind, owner_id, currency, purpose, flags, metadata, "
        "created_at, debits_pending, debits_posted, credits_pending, credits_posted) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        accounts,
    )
    old.close()

    store = SqliteLedgerStore(path)  # migrates
    try:
        conn = connect(path)
        figures = "id, owner_kind, owner_id, currency, purpose, flags, metadata, created_at, "
        figures += "debits_pending, debits_posted, credits_pending, credits_posted"
        assert conn.execute(f"SELECT {figures} FROM accounts ORDER BY id").fetchall() == sorted(
            accounts
        )
        # Numbered in id order; an account made now takes the next number.
        assert conn.execute("SELECT id, num FROM account_definitions ORDER BY num").fetchall() == [
            ("bank", 1),
            ("h1", 2),
            ("w1", 3),
        ]
        balance = store.balance("w1")
        assert balance is not None and balance.credits_posted == 100
        plan = " ".join(
            str(r)
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM accounts WHERE owner_kind = 'player' "
                "AND owner_id = 'p1'"
            )
        )
        assert "accounts_by_owner" in plan
    finally:
        store.close()


@pytest.mark.parametrize(
    ("flags", "change"),
    [
        (1, "debits_posted = credits_posted + 1"),  # debits must not exceed credits
        (1, "debits_pending = credits_posted - debits_posted + 1"),
        (2, "credits_posted = debits_posted + 1"),  # credits must not exceed debits
        (0, "credits_posted = -1"),
        (3, "debits_posted = 0"),  # both rules at once is no rule
    ],
)
def test_the_database_holds_balance_rules_apart_from_definitions(
    conn: sqlite3.Connection, flags: int, change: str
) -> None:
    conn.execute("INSERT INTO account_balances (num, flags) VALUES (1, 0)")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        conn.execute("UPDATE account_balances SET flags = ?, " + change, (flags,))
    assert conn.execute("SELECT flags, debits_posted FROM account_balances").fetchall() == [(0, 0)]


def test_transfers_of_every_shape_are_written_whole_and_in_order(tmp_path: Path) -> None:
    """Single transfers bind only the columns they fill; the rest bind all. A batch that
    mixes them keeps the order it was decided in, and each reads back as it was made."""
    store = SqliteLedgerStore(tmp_path / "ledger.sqlite")
    try:
        store.create_accounts(
            [Account(a, OwnerKind.OPERATOR, a, "EUR", "test") for a in ("a", "b")], START
        )
        later = START - timedelta(minutes=5)
        requests = [
            TransferRequest("plain1", "a", "b", 1, "EUR", "c"),
            TransferRequest("noted", "a", "b", 2, "EUR", "c", event_ref="ev-1"),
            TransferRequest("meta", "b", "a", 3, "EUR", "c", metadata={"k": "v"}),
            TransferRequest(
                "hold", "a", "b", 4, "EUR", "c", kind=TransferKind.PENDING, timeout_s=60
            ),
            TransferRequest("plain2", "b", "a", 5, "EUR", "c", occurred_at=later),
            TransferRequest("post", kind=TransferKind.POST, pending_id="hold", code="p"),
            TransferRequest("plain3", "a", "b", 6, "EUR", "c"),
        ]
        (results,) = store.apply([requests], START)
        assert [r.code for r in results] == [ResultCode.OK] * len(requests)
        page = store.account_transfers("a")
        assert [t.id for t in page.items] == [r.id for r in requests]
        for result in results:
            assert result.transfer is not None
            written = store.get_transfer(result.id)
            expected = result.transfer
            if expected.id == "hold":  # posted later in the same batch
                expected = replace(expected, status=PendingStatus.POSTED, resolved_at=START)
            assert written == expected
    finally:
        store.close()
