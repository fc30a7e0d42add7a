"""The settlement worker behaves the same on every store, and survives failures mid-commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tally.events.model import EventKind
from tally.settlement.contracts import ContractTerms, flat
from tally.settlement.engine import SettlementEvent, WaitingRollback
from tests.support.settlement import TestWorker

MAR = datetime(2026, 3, 1, tzinfo=UTC)
APR = datetime(2026, 4, 1, tzinfo=UTC)
CONTRACT = ContractTerms(
    "acme-std",
    1,
    "acme",
    datetime(2026, 1, 1, tzinfo=UTC),
    "EUR",
    {"*": flat("0.10")},
    minimum_fee=2_500,
)
FEE = "provider:acme:fee_payable:op1:EUR"


def events(n: int) -> list[SettlementEvent]:
    out: list[SettlementEvent] = []
    for i in range(n):
        at = MAR + timedelta(minutes=i)
        common = {
            "provider": "acme",
            "operator": "op1",
            "player": f"p{i % 5}",
            "game_type": "slots" if i % 2 else "live",
            "currency": "EUR",
        }
        out.append(
            SettlementEvent(f"bet{i}", EventKind.BET, amount=1_000 + i, occurred_at=at, **common)
        )  # type: ignore[arg-type]
        if i % 3 == 0:
            out.append(
                SettlementEvent(f"win{i}", EventKind.WIN, amount=1_500, occurred_at=at, **common)
            )  # type: ignore[arg-type]
        if i % 7 == 0:
            out.append(
                SettlementEvent(
                    f"rb{i}", EventKind.ROLLBACK, amount=0, occurred_at=at, ref=f"bet{i}", **common
                )
            )  # type: ignore[arg-type]
    return out


@pytest.fixture(params=["memory", "sqlite", "postgres", "postgres-partitioned"])
def make(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Makes workers on fresh stores of one kind (each its own file or schema); the
    partitioned kind is PostgreSQL after `tally maintain --install` (ADR 0023)."""
    made: list[TestWorker] = []

    def factory(**kw: object) -> TestWorker:
        where: dict[str, object] = {}
        if request.param == "sqlite":
            where["sqlite_path"] = tmp_path / f"tally-{len(made)}.sqlite"
        elif request.param.startswith("postgres"):
            schema = request.getfixturevalue("pg_schema") if not made else _extra_schema(request)
            if request.param == "postgres-partitioned":
                _partition(schema)
            where["pg_schema"] = schema
        made.append(TestWorker([CONTRACT], **where, **kw))  # type: ignore[arg-type]
        return made[-1]

    yield factory
    for worker in made:
        worker.shutdown()


def _partition(schema: str) -> None:
    """The lifecycle's partitioned tables, with monthly partitions for the tests' months."""
    from tally.adapters.postgres.lifecycle import PARTITIONED, PostgresPartitions
    from tally.lifecycle.seal import Period
    from tests.conftest import PG_DSN

    parts = PostgresPartitions(PG_DSN, schema=schema)
    parts.install()
    months = [Period.parse("2025-12")]
    while len(months) < 14:
        months.append(months[-1].next())
    for table in PARTITIONED:
        parts.ensure(table, ["global"], months)


def _extra_schema(request: pytest.FixtureRequest) -> str:
    """A second fresh schema for tests that compare two workers."""
    import uuid

    import psycopg

    from tests.conftest import PG_DSN

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")

    def drop() -> None:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")

    request.addfinalizer(drop)
    return name


def test_statements_and_ledger_agree_after_a_close(make) -> None:  # type: ignore[no-untyped-def]
    worker = make(batch_max_events=13)
    worker.feed(events(60), MAR)
    statement = worker.close("acme-std", "op1", "2026-03", APR)
    [stored] = worker.store.statements()
    assert (stored.period, stored.sha256, stored.document) == (
        "2026-03",
        statement.sha256,
        statement.to_json(),
    )
    assert worker.net(FEE) == statement.fee.fee
    assert worker.worker.position == len(events(60))


def test_a_restarted_worker_resumes_from_its_committed_position(make) -> None:  # type: ignore[no-untyped-def]
    all_events = events(80)
    straight = make()
    straight.feed(all_events, MAR)
    expected = straight.close("acme-std", "op1", "2026-03", APR).to_json()

    interrupted = make(batch_max_events=9)
    interrupted.clock.set(MAR)
    interrupted.source.append(all_events)
    for _ in range(4):
        interrupted.worker.step()
    interrupted.restart()  # the old worker is gone, as after kill -9
    assert interrupted.worker.position == 36
    interrupted.worker.drain()
    assert interrupted.close("acme-std", "op1", "2026-03", APR).to_json() == expected


def test_a_failure_inside_a_commit_leaves_nothing_behind(make, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    worker = make(batch_max_events=10)
    worker.clock.set(MAR)
    worker.source.append(events(30))
    worker.worker.step()
    fee_before = worker.net(FEE)
    position_before = worker.worker.position
    store = worker.store

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    if type(store).__name__.startswith("Sqlite"):
        # Fail after the ledger writes, inside the same transaction.
        import tally.adapters.sqlite.settlement_state as state

        monkeypatch.setattr(state, "save_position", broken)
    elif type(store).__name__.startswith("Postgres"):
        monkeypatch.setattr(store, "_save_fees", broken)
    else:
        monkeypatch.setattr(store, "commit_batch", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        worker.worker.step()
    monkeypatch.undo()
    assert worker.net(FEE) == fee_before
    assert worker.store.position("settlement") == position_before
    worker.worker.drain()
    straight = make()
    straight.feed(events(30), MAR)
    assert (
        worker.close("acme-std", "op1", "2026-03", APR).to_json()
        == straight.close("acme-std", "op1", "2026-03", APR).to_json()
    )


def test_an_event_settlement_cannot_place_is_kept_with_its_reason(make) -> None:  # type: ignore[no-untyped-def]
    worker = make()
    stray = SettlementEvent("x1", EventKind.BET, "nobody", "op1", "p1", "slots", 100, "EUR", MAR)
    worker.feed([stray, *events(2)], MAR)
    [(key, reason, _)] = worker.store.problems()
    assert key == "x1"
    assert "no contract in force for provider nobody" in reason
    assert worker.worker.position == 1 + len(events(2))


def _rollback(key: str, ref: str, at: datetime, provider: str = "acme") -> SettlementEvent:
    return SettlementEvent(
        key, EventKind.ROLLBACK, provider, "op1", "p1", "slots", 0, "EUR", at, ref=ref
    )


def test_a_waiting_rollback_keeps_its_instant_operator_currency_and_period(make) -> None:  # type: ignore[no-untyped-def]
    worker = make()
    in_march = MAR + timedelta(hours=5)
    in_april = APR + timedelta(days=2)
    worker.feed(
        [
            _rollback("rb-mar", "gone", in_march),
            _rollback("rb-apr", "later", in_april),
            # No contract is in force for this provider: its period cannot be said.
            _rollback("rb-stray", "nowhere", in_march, provider="nobody"),
        ],
        APR + timedelta(days=3),
    )
    before = {o.waiting.key: o for o in worker.store.orphans()}
    assert {k: o.outlived_close for k, o in before.items()} == {
        "rb-mar": False,
        "rb-apr": False,
        "rb-stray": None,
    }
    worker.close("acme-std", "op1", "2026-03", APR + timedelta(days=3))
    found = worker.store.orphans()
    assert [(o.waiting.ref, o.waiting.key) for o in found] == [
        ("gone", "rb-mar"),
        ("later", "rb-apr"),
        ("nowhere", "rb-stray"),
    ]
    march, april, stray = (o.waiting for o in found)
    assert (march.occurred_at, march.operator, march.currency) == (in_march, "op1", "EUR")
    assert (march.contract_id, march.period, march.period_start) == ("acme-std", "2026-03", MAR)
    assert (april.contract_id, april.period, april.period_start) == ("acme-std", "2026-04", APR)
    assert (stray.operator, stray.contract_id, stray.period) == ("op1", None, None)
    # March closed with its rollback still waiting; April is open.
    assert [o.outlived_close for o in found] == [True, False, None]
    # The original arriving at last takes the rollback off the list.
    original = SettlementEvent(
        "later", EventKind.BET, "acme", "op1", "p1", "slots", 100, "EUR", in_april
    )
    worker.feed([original], APR + timedelta(days=3))
    assert [o.waiting.key for o in worker.store.orphans()] == ["rb-mar", "rb-stray"]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_rollback_kept_before_the_upgrade_is_listed_with_its_period_unknown(  # type: ignore[no-untyped-def]
    kind, request, tmp_path: Path, monkeypatch
) -> None:
    import tally.adapters.postgres.ledger as pg_ledger
    import tally.adapters.sqlite.ledger as sqlite_ledger

    module: Any = sqlite_ledger if kind == "sqlite" else pg_ledger
    real = module.load_migrations

    def before_003(package: str, component: str) -> Any:
        found = real(package, component)
        return found[:2] if component == "settlement" else found

    where: dict[str, Any] = (
        {"sqlite_path": tmp_path / "tally.sqlite"}
        if kind == "sqlite"
        else {"pg_schema": request.getfixturevalue("pg_schema")}
    )
    monkeypatch.setattr(module, "load_migrations", before_003)
    old = TestWorker([CONTRACT], **where)
    old.shutdown()
    insert = "INSERT INTO settlement_orphans VALUES ('gone', 'rb-old')"
    if kind == "sqlite":
        import sqlite3

        with sqlite3.connect(where["sqlite_path"]) as conn:
            conn.execute(insert)
    else:
        import psycopg

        from tests.conftest import PG_DSN

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {where['pg_schema']}")
            conn.execute(insert)
    monkeypatch.undo()
    upgraded = TestWorker([CONTRACT], **where)
    request.addfinalizer(upgraded.shutdown)
    upgraded.feed([_rollback("rb-new", "later", MAR)], MAR)
    found = upgraded.store.orphans()
    assert [(o.waiting, o.outlived_close) for o in found] == [
        (WaitingRollback("gone", "rb-old"), None),
        (
            WaitingRollback("later", "rb-new", MAR, "op1", "EUR", "acme-std", "2026-03", MAR),
            False,
        ),
    ]
