"""PostgreSQL under concurrent writers: no lost update, no balance ever past its rule.

Several PostgresLedgerStore instances (each its own write connection, like separate
worker processes) share one schema; each has a LedgerService fed by many threads.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

from tally.adapters.postgres.connection import connect_kwargs
from tally.adapters.postgres.ledger import PostgresLedgerStore
from tally.kernel.clock import FixedClock
from tally.ledger.model import (
    Account,
    AccountFlags,
    OwnerKind,
    PendingStatus,
    ResultCode,
    TransferKind,
    TransferRequest,
)
from tally.ledger.service import LedgerService
from tests.conftest import PG_DSN

R = ResultCode
WALLET = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
WRITERS = 3
WALLETS = [f"w{i}" for i in range(6)]
FUNDING = 1_000


@dataclass
class Cluster:
    schema: str
    stores: list[PostgresLedgerStore]
    services: list[LedgerService]

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(PG_DSN, autocommit=True, **connect_kwargs(self.schema))

    def balances(self) -> dict[str, tuple[int, int, int, int, int]]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT id, flags, debits_pending, debits_posted, credits_pending, "
                "credits_posted FROM accounts"
            ).fetchall()
        return {r[0]: tuple(r[1:]) for r in rows}


@pytest.fixture
def cluster(pg_schema: str, clock: FixedClock) -> Iterator[Cluster]:
    stores = [PostgresLedgerStore(PG_DSN, schema=pg_schema) for _ in range(WRITERS)]
    services = [LedgerService(s, clock).start() for s in stores]
    accounts = [Account("bank", OwnerKind.PLATFORM, "tally", "EUR", "float")] + [
        Account(w, OwnerKind.PLAYER, w, "EUR", "wallet", WALLET) for w in WALLETS
    ]
    assert all(r.code.ok for r in services[0].create_accounts(accounts))
    funding = [TransferRequest(f"fund-{w}", "bank", w, FUNDING, "EUR", "fund") for w in WALLETS]
    assert [r.code for r in services[0].transfer(funding)] == [R.OK] * len(WALLETS)
    try:
        yield Cluster(pg_schema, stores, services)
    finally:
        for service in services:
            service.stop()
        for store in stores:
            store.close()


def rule_holds(row: tuple[int, int, int, int, int]) -> bool:
    flags, dpend, dpost, _cpend, cpost = row
    return not flags & WALLET or dpend + dpost <= cpost


def test_many_submitters_on_several_writers_lose_no_update_and_never_overdraw(
    cluster: Cluster,
) -> None:
    threads_n, rounds = 16, 60
    accepted: list[tuple[str, str, int]] = []  # (debit, credit, posted amount)
    refused: dict[ResultCode, int] = defaultdict(int)
    lock = threading.Lock()
    errors: list[BaseException] = []
    done = threading.Event()
    violations: list[dict[str, Any]] = []
    samples = [0]

    def submitter(n: int) -> None:
        rng = random.Random(n)
        try:
            for i in range(rounds):
                service = cluster.services[rng.randrange(WRITERS)]
                dr, cr = rng.sample(WALLETS, 2)
                amount = rng.randint(1, 450)
                tid = f"{n}-{i}"
                if rng.random() < 0.7:
                    [res] = service.transfer([TransferRequest(tid, dr, cr, amount, "EUR", "bet")])
                    with lock:
                        if res.code is R.OK:
                            accepted.append((dr, cr, amount))
                        else:
                            refused[res.code] += 1
                    continue
                hold = TransferRequest(
                    tid, dr, cr, amount, "EUR", "hold", kind=TransferKind.PENDING
                )
                [res] = service.transfer([hold])
                if res.code is not R.OK:
                    with lock:
                        refused[res.code] += 1
                    continue
                # Resolve the reservation through another writer.
                other = cluster.services[rng.randrange(WRITERS)]
                if rng.random() < 0.5:
                    part = rng.randint(1, amount)
                    follow = TransferRequest(
                        f"{tid}-post", amount=part, kind=TransferKind.POST, pending_id=tid
                    )
                    posted = part
                else:
                    follow = TransferRequest(f"{tid}-void", kind=TransferKind.VOID, pending_id=tid)
                    posted = 0
                [res] = other.transfer([follow])
                assert res.code is R.OK, res
                if posted:
                    with lock:
                        accepted.append((dr, cr, posted))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def watcher() -> None:
        while not done.is_set():
            for aid, row in cluster.balances().items():
                if not rule_holds(row):
                    violations.append({aid: row})
            samples[0] += 1

    watch = threading.Thread(target=watcher)
    watch.start()
    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watch.join()

    assert errors == []
    assert violations == []
    assert samples[0] > 1  # balances were watched while the writers ran
    # Contention was real: money moved, and overdrafts were refused.
    assert len(accepted) > threads_n * rounds // 4
    assert refused[R.EXCEEDS_CREDITS] > 0
    assert set(refused) <= {R.EXCEEDS_CREDITS}
    expected = {w: [0, FUNDING] for w in WALLETS}  # debits_posted, credits_posted
    for dr, cr, amount in accepted:
        expected[dr][0] += amount
        expected[cr][1] += amount
    final = cluster.balances()
    for w in WALLETS:
        _flags, dpend, dpost, cpend, cpost = final[w]
        assert (dpend, dpost, cpend, cpost) == (0, expected[w][0], 0, expected[w][1]), w
        assert rule_holds(final[w])
    for store in cluster.stores:
        total = store.totals_by_currency()["EUR"]
        assert total.debits_posted == total.credits_posted
        assert total.debits_pending == total.credits_pending == 0


def test_the_same_transfer_sent_through_every_writer_at_once_commits_once(
    cluster: Cluster,
) -> None:
    barrier = threading.Barrier(WRITERS * 2)
    codes: list[ResultCode] = []
    lock = threading.Lock()

    def send(service: LedgerService, tid: str) -> None:
        barrier.wait()
        [res] = service.transfer([TransferRequest(tid, "w0", "w1", 10, "EUR", "bet")])
        with lock:
            codes.append(res.code)

    for k in range(5):
        codes.clear()
        threads = [
            threading.Thread(target=send, args=(s, f"dup-{k}"))
            for s in cluster.services
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes) == [R.OK] + [R.EXISTS] * (WRITERS * 2 - 1)
    row = cluster.balances()["w0"]
    assert row[2] == 5 * 10


def test_a_pending_transfer_resolved_by_every_writer_at_once_is_resolved_once(
    cluster: Cluster,
) -> None:
    for k in range(5):
        pid = f"hold-{k}"
        hold = TransferRequest(pid, "w2", "w3", 100, "EUR", "hold", kind=TransferKind.PENDING)
        assert [r.code for r in cluster.services[0].transfer([hold])] == [R.OK]
        barrier = threading.Barrier(WRITERS)
        codes: dict[str, ResultCode] = {}

        def resolve(
            n: int,
            service: LedgerService,
            pid: str = pid,
            barrier: threading.Barrier = barrier,
            codes: dict[str, ResultCode] = codes,
        ) -> None:
            kind = TransferKind.POST if n % 2 == 0 else TransferKind.VOID
            request = TransferRequest(f"{pid}-{n}", kind=kind, pending_id=pid)
            barrier.wait()
            [res] = service.transfer([request])
            codes[request.id] = res.code

        threads = [
            threading.Thread(target=resolve, args=(n, s)) for n, s in enumerate(cluster.services)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [tid for tid, code in codes.items() if code is R.OK]
        assert len(winners) == 1, codes
        final = cluster.stores[0].get_transfer(pid)
        won_by_post = int(winners[0].rsplit("-", 1)[1]) % 2 == 0
        assert final.status is (PendingStatus.POSTED if won_by_post else PendingStatus.VOIDED)
        losers = {code for tid, code in codes.items() if code is not R.OK}
        allowed = {R.PENDING_TRANSFER_ALREADY_POSTED, R.PENDING_TRANSFER_ALREADY_VOIDED}
        assert losers <= allowed
    row = cluster.balances()["w2"]
    assert row[1] == 0  # no reservation left behind


def test_the_database_itself_refuses_a_balance_that_breaks_the_wallet_rule(
    cluster: Cluster,
) -> None:
    with cluster.connect() as conn:
        with pytest.raises(pg_errors.CheckViolation):
            conn.execute(
                "UPDATE account_balances SET debits_posted = credits_posted + 1 WHERE id = 'w0'"
            )
        with pytest.raises(pg_errors.CheckViolation):
            conn.execute(
                "UPDATE account_balances SET debits_pending = credits_posted - debits_posted + 1 "
                "WHERE id = 'w0'"
            )
        with pytest.raises(pg_errors.CheckViolation):
            conn.execute("UPDATE account_balances SET credits_posted = -1 WHERE id = 'bank'")
        # A transfer row between accounts of another currency, or naming an account that
        # does not exist, is refused (checked once per statement, over all its rows).
        insert = (
            "INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount, "
            "currency, code, occurred_at, recorded_at) VALUES "
        )
        with pytest.raises(pg_errors.ForeignKeyViolation, match="raw-usd"):
            conn.execute(insert + "('raw-usd', 'single', 'w0', 'w1', 1, 'USD', 'x', now(), now())")
        with pytest.raises(pg_errors.ForeignKeyViolation, match="raw-ghost"):
            conn.execute(
                insert + "('raw-ok', 'single', 'w0', 'w1', 1, 'EUR', 'x', now(), now()), "
                "('raw-ghost', 'single', 'w0', 'ghost', 1, 'EUR', 'x', now(), now())"
            )
        with pytest.raises(pg_errors.ForeignKeyViolation):
            conn.execute("UPDATE transfers SET credit_account_id = 'ghost' WHERE true")
        # An account a transfer may name never goes away or changes its identity.
        with pytest.raises(pg_errors.ForeignKeyViolation, match="cannot be deleted"):
            conn.execute("DELETE FROM account_definitions WHERE id = 'w0'")
        with pytest.raises(pg_errors.ForeignKeyViolation, match="id or currency"):
            conn.execute("UPDATE account_definitions SET currency = 'USD' WHERE id = 'w0'")
    assert rule_holds(cluster.balances()["w0"])
    assert cluster.balances()["w0"][1:] == (0, 0, 0, FUNDING)


def test_reservations_racing_their_timeout_across_writers_end_exactly_once(
    cluster: Cluster, clock: FixedClock
) -> None:
    from datetime import timedelta

    threads_n, rounds = 8, 25
    posted: list[tuple[str, str, int]] = []
    outcomes: dict[str, ResultCode] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    done = threading.Event()

    def ticker() -> None:
        while not done.wait(0.01):
            clock.advance(timedelta(seconds=1))

    def submitter(n: int) -> None:
        rng = random.Random(1_000 + n)
        try:
            for i in range(rounds):
                dr, cr = rng.sample(WALLETS, 2)
                amount = rng.randint(1, 200)
                tid = f"r{n}-{i}"
                hold = TransferRequest(
                    tid, dr, cr, amount, "EUR", "hold", kind=TransferKind.PENDING, timeout_s=1
                )
                [res] = cluster.services[rng.randrange(WRITERS)].transfer([hold])
                if res.code is not R.OK:
                    assert res.code is R.EXCEEDS_CREDITS, res
                    continue
                kind = rng.choice([TransferKind.POST, TransferKind.VOID])
                follow = TransferRequest(f"{tid}-f", kind=kind, pending_id=tid)
                [res] = cluster.services[rng.randrange(WRITERS)].transfer([follow])
                with lock:
                    outcomes[tid] = res.code
                    if res.code is R.OK and kind is TransferKind.POST:
                        posted.append((dr, cr, amount))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    tick = threading.Thread(target=ticker)
    tick.start()
    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    tick.join()
    assert errors == []
    # Whatever is still reserved expires once the ledger next applies, far later.
    clock.advance(timedelta(hours=1))
    cluster.services[0].transfer([])

    assert set(outcomes.values()) <= {R.OK, R.PENDING_TRANSFER_EXPIRED}
    assert R.PENDING_TRANSFER_EXPIRED in outcomes.values()  # the race did happen
    store = cluster.stores[0]
    for tid, code in outcomes.items():
        status = store.get_transfer(tid).status
        follow = store.get_transfer(f"{tid}-f")
        if code is R.OK:
            assert status in (PendingStatus.POSTED, PendingStatus.VOIDED)
            assert follow is not None
        else:
            assert status is PendingStatus.EXPIRED
            assert follow is None
    expected = {w: [0, FUNDING] for w in WALLETS}
    for dr, cr, amount in posted:
        expected[dr][0] += amount
        expected[cr][1] += amount
    final = cluster.balances()
    for w in WALLETS:
        assert final[w][1:] == (0, expected[w][0], 0, expected[w][1]), w
