"""The settlement worker behaves the same on every store, and survives failures mid-commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tally.events.model import EventKind
from tally.settlement.contracts import ContractTerms, flat
from tally.settlement.engine import SettlementEvent
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


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def make(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Makes workers on fresh stores of one kind (each its own file or schema)."""
    made: list[TestWorker] = []

    def factory(**kw: object) -> TestWorker:
        where: dict[str, object] = {}
        if request.param == "sqlite":
            where["sqlite_path"] = tmp_path / f"tally-{len(made)}.sqlite"
        elif request.param == "postgres":
            where["pg_schema"] = (
                request.getfixturevalue("pg_schema") if not made else (_extra_schema(request))
            )
        made.append(TestWorker([CONTRACT], **where, **kw))  # type: ignore[arg-type]
        return made[-1]

    yield factory
    for worker in made:
        worker.shutdown()


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
