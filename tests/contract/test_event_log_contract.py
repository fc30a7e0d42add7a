"""The event log contract, on every adapter: deduplicated appends, ordered reads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tally.events import codec
from tally.events.codec import EventDecodeError
from tally.events.model import Channel, Event, EventKind, Source
from tally.events.ports import Appended, EventLog
from tests.conftest import NATS_URL, stream_names

TOKYO = timezone(timedelta(hours=9))
T = datetime(2026, 3, 2, 21, 30, tzinfo=TOKYO)


def bet(tx: str, amount: int = 1_000, **kw: object) -> Event:
    base = Event(
        provider="acme",
        provider_tx_id=tx,
        kind=EventKind.BET,
        round_id=f"r-{tx}",
        operator="op1",
        player="p-9f2c",
        game="acme-slot-1",
        game_type="slots",
        amount=amount,
        currency="JPY",
        occurred_at=T,
        recorded_at=datetime.now(UTC),
        channel=Channel.MOBILE,
        region="jp",
        raw='{"as":"received"}',
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "sqlite", "nats"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    if request.param == "memory":
        from tally.adapters.memory.events import MemoryEventLog

        yield MemoryEventLog()
        return
    if request.param == "nats":
        from tally.adapters.nats.events import JetStreamEventLog

        nats_log = JetStreamEventLog(NATS_URL, stream_names())
        yield nats_log
        nats_log.drop()
        nats_log.close()
        return
    from tally.adapters.sqlite.events import SqliteEventLog

    sqlite = SqliteEventLog(tmp_path / "tally.sqlite")
    yield sqlite
    sqlite.close()


def test_new_events_get_positions_in_arrival_order(log: EventLog) -> None:
    results = log.append([bet("1"), bet("2"), bet("3")])
    assert [(r.outcome, r.position) for r in results] == [
        (Appended.ACCEPTED, 1),
        (Appended.ACCEPTED, 2),
        (Appended.ACCEPTED, 3),
    ]
    assert [p for p, _ in log.read(1, 10)] == [2, 3]
    assert log.head() == 3


def test_a_large_append_keeps_every_event_in_order_with_its_duplicates_counted_once(
    log: EventLog,
) -> None:
    """More events than one insert statement takes (the embedded log writes 256 a
    statement), with a redelivery inside: each new one once, in arrival order."""
    events = [bet(str(i)) for i in range(600)]
    results = log.append([*events[:300], events[7], *events[300:]])
    assert [r.outcome for r in results].count(Appended.DUPLICATE) == 1
    assert results[300].position == 8
    assert [p for p, _ in log.read(0, 1_000)] == list(range(1, 601))
    assert [e.provider_tx_id for _, e in log.read(590, 20)] == [str(i) for i in range(590, 600)]


def test_a_redelivery_is_a_duplicate_counted_once_even_if_its_bytes_differ(log: EventLog) -> None:
    log.append([bet("1")])
    later = bet("1", raw='{"as": "re-sent"}', recorded_at=datetime.now(UTC) + timedelta(seconds=5))
    [result] = log.append([later])
    assert (result.outcome, result.position) == (Appended.DUPLICATE, 1)
    assert log.head() == 1
    [(_, stored)] = log.read(0, 10)
    assert stored.raw == '{"as":"received"}'  # the first delivery is what counts


def test_the_same_key_with_other_content_is_a_conflict_kept_apart(log: EventLog) -> None:
    log.append([bet("1")])
    [result] = log.append([bet("1", amount=2_000)])
    assert (result.outcome, result.differs_in) == (Appended.CONFLICT, "amount")
    assert log.head() == 1
    [(key, differs, body)] = log.conflicts()
    assert (key, differs) == ("acme:1:bet", "amount")
    assert codec.loads(body).amount == 2_000


def test_a_redelivery_naming_another_operator_is_a_conflict_not_a_second_event(
    log: EventLog,
) -> None:
    log.append([bet("1")])
    [result] = log.append([bet("1", operator="op2")])
    assert (result.outcome, result.differs_in) == (Appended.CONFLICT, "operator")
    assert log.head() == 1
    assert [e.operator for _, e in log.read(0, 10)] == ["op1"]


def test_a_feeds_report_and_the_providers_own_event_of_one_transaction_never_collide(
    log: EventLog,
) -> None:
    report = bet("1", amount=9_999, source=Source.FEED)
    results = log.append([report, bet("1"), report, bet("1")])
    assert [(r.key, r.outcome) for r in results] == [
        ("feed:op1:acme:1:bet", Appended.ACCEPTED),
        ("acme:1:bet", Appended.ACCEPTED),
        ("feed:op1:acme:1:bet", Appended.DUPLICATE),
        ("acme:1:bet", Appended.DUPLICATE),
    ]
    assert [(e.source, e.amount) for _, e in log.read(0, 10)] == [
        (Source.FEED, 9_999),
        (Source.PROVIDER, 1_000),
    ]
    assert log.conflicts() == []


def test_duplicates_within_one_append_count_once(log: EventLog) -> None:
    results = log.append([bet("1"), bet("1"), bet("1", amount=5)])
    assert [r.outcome for r in results] == [
        Appended.ACCEPTED,
        Appended.DUPLICATE,
        Appended.CONFLICT,
    ]
    assert log.head() == 1


def test_an_event_reads_back_exactly_with_its_offset_kept(log: EventLog) -> None:
    event = bet("7")
    log.append([event])
    [(_, stored)] = log.read(0, 1)
    assert stored == event
    assert stored.occurred_at.utcoffset() == timedelta(hours=9)


def test_the_sqlite_log_keeps_everything_across_a_restart(tmp_path: Path) -> None:
    from tally.adapters.sqlite.events import SqliteEventLog

    first = SqliteEventLog(tmp_path / "t.sqlite")
    first.append([bet(str(i)) for i in range(50)])
    first.close()
    again = SqliteEventLog(tmp_path / "t.sqlite")
    assert again.head() == 50
    assert [r.outcome for r in again.append([bet("3"), bet("50")])] == [
        Appended.DUPLICATE,
        Appended.ACCEPTED,
    ]
    again.close()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "1.5"}, "amount"),  # JPY has no minor unit
        ({"amount": 1000}, "amount"),  # amounts travel as strings
        ({"occurred_at": "2026-03-02T21:30:00"}, "occurred_at"),
        ({"kind": "steal"}, "kind/channel"),
        ({"kind": "rollback", "ref": ""}, "ref"),
        ({"operator": ""}, "operator"),
        ({"schema_version": 2}, "schema_version"),
    ],
)
def test_a_malformed_event_is_refused_naming_the_field(
    change: dict[str, object], field: str
) -> None:
    data = codec.to_dict(bet("1"))
    data.update(change)
    with pytest.raises(EventDecodeError) as refused:
        codec.from_dict(data)
    assert refused.value.field == field
