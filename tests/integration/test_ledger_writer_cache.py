"""The ledger writer's cache: accounts and balances kept between batches.

The engine works on the cache itself, not on copies, so these tests hold it to the
store's answers where the cache is under strain: a cache smaller than the accounts a
run touches (forgetting accounts between batches), linked chains that fail and must
leave the cached balances as they were, and a second writer on the same file, after
whose commits the cache must be read again. The reference is the in-memory store.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest

from tally.adapters.memory.ledger import MemoryLedgerStore
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.kernel.limits import LedgerLimits
from tally.ledger.model import Account, AccountFlags, OwnerKind, TransferRequest
from tally.ledger.ports import LedgerStore
from tests.conftest import PG_DSN, START

WALLETS = [
    Account(
        f"w{i}",
        OwnerKind.PLAYER,
        f"p{i}",
        "EUR",
        "wallet",
        AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    )
    for i in range(6)
]
HOUSE = [Account(f"h{i}", OwnerKind.OPERATOR, f"o{i}", "EUR", "house") for i in range(3)]


def _submissions(seed: int, count: int) -> list[list[list[TransferRequest]]]:
    """Batches of submissions: single transfers and linked pairs, many of them refused
    (wallets run dry), so chains fail half-way and are undone."""
    rng = random.Random(seed)
    ids = [a.id for a in WALLETS + HOUSE]
    batches: list[list[list[TransferRequest]]] = []
    n = 0
    for _ in range(count):
        batch: list[list[TransferRequest]] = []
        for _ in range(rng.randint(1, 6)):
            size = rng.choice([1, 1, 2, 3])
            chain: list[TransferRequest] = []
            for k in range(size):
                debit, credit = rng.sample(ids, 2)
                n += 1
                chain.append(
                    TransferRequest(
                        f"t{n}",
                        debit,
                        credit,
                        rng.randint(1, 400),
                        "EUR",
                        "play",
                        linked=k < size - 1,
                    )
                )
            batch.append(chain)
        batches.append(batch)
    return batches


def _replay(writers: list[LedgerStore], seed: int, batches: int) -> int:
    """Set up, then apply seeded batches through the writers in turn (the first two of
    every three through the first) and to the reference; answers and balances must
    match it. Returns how many requests were refused."""
    reference = MemoryLedgerStore()
    for s in (writers[0], reference):
        s.create_accounts(WALLETS + HOUSE, START)
        s.apply(
            [[TransferRequest(f"f{w.id}", "h0", w.id, 1_000, "EUR", "fund") for w in WALLETS]],
            START,
        )
    refused = 0
    for i, batch in enumerate(_submissions(seed, batches)):
        now = START + timedelta(seconds=i + 1)
        writer = writers[0] if i % 3 else writers[-1]
        got = writer.apply(batch, now)
        want = reference.apply(batch, now)
        assert [[r.code for r in sub] for sub in got] == [[r.code for r in sub] for sub in want]
        refused += sum(not r.code.ok for sub in got for r in sub)
    for account in WALLETS + HOUSE:
        assert writers[0].balance(account.id) == reference.balance(account.id), account.id
    return refused


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_cache_smaller_than_the_accounts_gives_the_reference_answers(
    tmp_path: Path, seed: int
) -> None:
    store = SqliteLedgerStore(tmp_path / "ledger.sqlite", LedgerLimits(account_cache_max=4))
    try:
        # The run must refuse (and undo chains half-way), or it proves less.
        assert _replay([store], seed, 60) > 0
    finally:
        store.close()


def test_postgres_keeps_few_definitions_and_still_gives_the_reference_answers(
    pg_schema: str,
) -> None:
    """On PostgreSQL only definitions are kept (balances are read under lock each batch);
    a cache smaller than a batch's accounts starts over and must not lose one."""
    from tally.adapters.postgres.ledger import PostgresLedgerStore

    store = PostgresLedgerStore(PG_DSN, LedgerLimits(account_cache_max=4), schema=pg_schema)
    try:
        assert _replay([store], 11, 40) > 0
    finally:
        store.close()


def test_a_second_writer_on_the_file_makes_the_first_read_balances_again(
    tmp_path: Path,
) -> None:
    first = SqliteLedgerStore(tmp_path / "ledger.sqlite")
    second = SqliteLedgerStore(tmp_path / "ledger.sqlite")
    try:
        _replay([first, second], 7, 40)  # both caches go stale in turn
    finally:
        first.close()
        second.close()
