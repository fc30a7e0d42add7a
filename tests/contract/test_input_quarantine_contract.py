"""The input quarantine contract, on every store: kept as received, listed, resolved once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tally.quarantine.inputs import (
    InputQuarantine,
    Reason,
    Refused,
    Status,
    payload_text,
    storable,
)
from tests.conftest import PG_DSN

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def refused(n: int, reason: Reason = Reason.MALFORMED, **kw: object) -> Refused:
    base: dict[str, object] = {
        "source": "callback",
        "channel": "softswiss",
        "reason": reason,
        "detail": f"play: entry {n}",
        "payload": f'{{"n": {n}, "text": "Grüße \\u0000"}}',
        "received_at": T + timedelta(seconds=n),
        "headers": {"x-request-sign": f"sig-{n}"},
        "key": f"softswiss:a-{n}:bet",
    }
    base.update(kw)
    return Refused(**base)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def quarantine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InputQuarantine]:
    if request.param == "memory":
        from tally.adapters.memory.quarantine import MemoryInputQuarantine

        yield MemoryInputQuarantine()
        return
    if request.param == "sqlite":
        from tally.adapters.sqlite.quarantine import SqliteInputQuarantine

        store = SqliteInputQuarantine(tmp_path / "tally.sqlite")
        yield store
        store.close()
        return
    from tally.adapters.postgres.quarantine import PostgresInputQuarantine

    schema = request.getfixturevalue("pg_schema")
    pg = PostgresInputQuarantine(PG_DSN, schema=schema)
    yield pg
    pg.close()


def test_an_entry_is_kept_exactly_as_refused(quarantine: InputQuarantine) -> None:
    entry_id = quarantine.put(refused(1, Reason.BAD_SIGNATURE))
    entry = quarantine.get(entry_id)
    assert entry is not None
    got = entry.refused
    want = refused(1, Reason.BAD_SIGNATURE)
    assert (got.source, got.channel, got.reason, got.detail, got.key) == (
        want.source,
        want.channel,
        want.reason,
        want.detail,
        want.key,
    )
    assert got.received_at == want.received_at
    assert dict(got.headers) == dict(want.headers)
    assert got.payload == want.payload.replace("\0", "\\x00")
    assert entry.status is Status.OPEN and entry.resolved_at is None


def test_entries_page_oldest_first_and_filter_by_status_and_reason(
    quarantine: InputQuarantine,
) -> None:
    ids = [
        quarantine.put(refused(n, Reason.MALFORMED if n % 2 else Reason.CONFLICT)) for n in range(7)
    ]
    seen: list[int] = []
    cursor = None
    while True:
        page = quarantine.entries(cursor=cursor, limit=3)
        seen += [q.id for q in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids
    conflicts = quarantine.entries(reason=Reason.CONFLICT).items
    assert [q.refused.detail for q in conflicts] == [f"play: entry {n}" for n in (0, 2, 4, 6)]
    assert quarantine.counts() == {("open", "malformed"): 3, ("open", "conflict"): 4}


def test_an_entry_is_resolved_once_and_keeps_who_and_when(quarantine: InputQuarantine) -> None:
    entry_id = quarantine.put(refused(1))
    later = T + timedelta(hours=1)
    ran: list[object] = []  # what runs in the move's transaction (its audit record)
    assert quarantine.resolve(
        entry_id, Status.REDRIVEN, by="ann", at=later, note="secret fixed", within=ran.append
    )
    assert len(ran) == 1
    assert not quarantine.resolve(entry_id, Status.DISMISSED, by="bob", at=later, within=ran.append)
    assert len(ran) == 1  # nothing moved, nothing recorded
    entry = quarantine.get(entry_id)
    assert entry is not None
    assert (entry.status, entry.resolved_by, entry.resolved_at, entry.note) == (
        Status.REDRIVEN,
        "ann",
        later,
        "secret fixed",
    )
    assert quarantine.entries(status=Status.OPEN).items == []
    assert not quarantine.resolve(
        entry_id + 100, Status.DISMISSED, by="bob", at=later, within=ran.append
    )
    assert quarantine.get(entry_id + 100) is None


def test_a_payload_that_is_not_text_is_kept_escaped_and_a_huge_one_cut() -> None:
    assert payload_text(b"ok \xff") == "ok \\xff"
    big = payload_text(b"x" * (300 * 1024))
    assert big.endswith("[cut at 256 KiB]") and len(big) < 300 * 1024


def test_a_file_line_is_kept_once_however_often_it_is_put(quarantine: InputQuarantine) -> None:
    line = refused(1, source="file", channel="acme-2026-03-02.csv", key="file:ab12:7")
    first = quarantine.put(line)
    assert quarantine.put(line) == first
    other = quarantine.put(refused(2, source="file", channel="x.csv", key="file:ab12:8"))
    assert other != first
    # Callbacks are kept each time: two refused deliveries are two facts.
    assert quarantine.put(refused(3)) != quarantine.put(refused(3))
    assert len(quarantine.entries().items) == 4


def test_text_no_store_can_hold_is_kept_escaped_in_every_field_the_same_everywhere(
    quarantine: InputQuarantine,
) -> None:
    # A JSON escape can put a NUL or a lone surrogate into any string a sender controls:
    # a field name in a detail, a CSV header in the headers, a key, a note typed by staff.
    bad = "a\x00b\ud800c"
    entry_id = quarantine.put(
        refused(
            1,
            source="file",
            channel=f"r{bad}.csv",
            detail=f"line 2: unknown fields {bad}",
            payload=f"{bad},bet",
            headers={"x-tally-columns": bad},
            key=f"file:{bad}:2",
        )
    )
    assert quarantine.put(refused(1, source="file", key=f"file:{bad}:2")) == entry_id
    assert quarantine.resolve(
        entry_id, Status.DISMISSED, by="ann", at=T, note=f"seen {bad}", within=lambda tx: None
    )
    entry = quarantine.get(entry_id)
    assert entry is not None
    kept = "a\\x00b\\ud800c"
    r = entry.refused
    assert (r.channel, r.detail, r.payload, r.key, entry.note) == (
        f"r{kept}.csv",
        f"line 2: unknown fields {kept}",
        f"{kept},bet",
        f"file:{kept}:2",
        f"seen {kept}",
    )
    assert dict(r.headers) == {"x-tally-columns": kept}
    assert storable(storable(bad)) == storable(bad) == kept  # escaping twice changes nothing
