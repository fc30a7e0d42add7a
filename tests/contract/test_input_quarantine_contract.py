"""The input quarantine contract, on every store: kept as received, listed, resolved once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tally.kernel.page import InvalidCursor
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
        "headers": {"content-type": "application/json", "x-tally-action": "play"},
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


def test_a_malformed_cursor_is_refused_rather_than_read_as_the_first_page(
    quarantine: InputQuarantine,
) -> None:
    quarantine.put(refused(1))
    with pytest.raises(InvalidCursor):
        quarantine.entries(cursor="abc")


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


# What each door brings in, with the secrets it carries: (source, channel, payload, headers).
SECRETS = ("S3CRET-TOKEN", "5e55a1d0hash", "SIGNATUREb64==", "sess-tok-9", "hunter2", "AKIA-KEY")
EVERY_PROTOCOL = [
    (
        "callback",
        "softswiss",
        '{"user_id": "p1", "currency": "EUR", "actions": []}',
        {"x-request-sign": "SIGNATUREb64==", "x-tally-query": "{}"},
    ),
    (
        "callback",
        "pragmatic",
        "userId=p1&token=sess-tok-9&amount=1.00&hash=5e55a1d0hash&providerId=pp",
        {"content-type": "application/x-www-form-urlencoded", "x-tally-query": "{}"},
    ),
    (
        "callback",
        "hub88",
        '{"user": "p1", "token": "sess-tok-9", "request_uuid": "u1", "amount": 100}',
        {"x-hub88-signature": "SIGNATUREb64==", "x-tally-query": "{}"},
    ),
    (
        "callback",
        "evolution",
        '{"uuid": "u1", "userId": "p1", "sid": "s1", "currency": "EUR"}',
        {"x-tally-action": "debit", "x-tally-query": '{"authToken": "S3CRET-TOKEN"}'},
    ),
    (
        "feed",
        "op1 (push)",
        '{"events": [{"key": "k1", "player": "p1", "api_key": "AKIA-KEY"}]}',
        {"x-tally-operator": "op1", "authorization": "Bearer S3CRET-TOKEN"},
    ),
    (
        "file",
        "acme-2026-03-02.csv",
        "bet,tx1,p1,1.00,EUR,password=hunter2",
        {"provider": "acme", "secret_key": "AKIA-KEY", "tz": "UTC"},
    ),
    (
        "file",
        "acme-2026-03-03.csv",
        'bet,tx2,p1,"1,00",sess-tok-9,EUR',
        {"x-tally-columns": "kind,tx,player,amount,session_token,currency"},
    ),
]


@pytest.mark.parametrize(("source", "channel", "payload", "headers"), EVERY_PROTOCOL)
def test_a_kept_input_of_every_protocol_holds_none_of_its_secrets(
    quarantine: InputQuarantine,
    source: str,
    channel: str,
    payload: str,
    headers: dict[str, str],
) -> None:
    entry_id = quarantine.put(
        refused(1, source=source, channel=channel, payload=payload, headers=headers, key="k:1")
    )
    entry = quarantine.get(entry_id)
    assert entry is not None
    kept = repr(entry) + repr(quarantine.entries().items)
    for secret in SECRETS:
        assert secret not in kept, f"{secret} kept from {channel}"
    assert "[redacted]" in kept
    # What is not secret is kept as sent, so a person can still read the input.
    assert "p1" in entry.refused.payload or "p1" in str(entry.refused.headers)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_entries_kept_before_redaction_lose_their_secrets_at_the_next_startup(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from tally.adapters.sql.quarantine import SqlInputQuarantine

    def open_store() -> SqlInputQuarantine:
        if kind == "sqlite":
            from tally.adapters.sqlite.quarantine import SqliteInputQuarantine

            return SqliteInputQuarantine(tmp_path / "tally.sqlite")
        from tally.adapters.postgres.quarantine import PostgresInputQuarantine

        return PostgresInputQuarantine(PG_DSN, schema=request.getfixturevalue("pg_schema"))

    store = open_store()
    # Rows as the code before redaction kept them: written past put, secrets and all.
    p = store.placeholder
    for source, channel, payload, headers in EVERY_PROTOCOL:
        store._run(
            "INSERT INTO input_quarantine (source, channel, reason, detail, payload, headers, "
            f"idem_key, received_at) VALUES ({', '.join([p] * 8)})",
            (
                source,
                channel,
                "malformed",
                "kept before",
                payload,
                json.dumps(headers),
                f"{channel}:1",
                store._time_in(T),
            ),
        )
    store._run("DELETE FROM input_quarantine_cleanups", ())
    store.close()

    store = open_store()
    try:
        kept = repr(store.entries(limit=100).items)
        assert kept.count("[redacted]") >= len(EVERY_PROTOCOL)
        for secret in SECRETS:
            assert secret not in kept
        assert store.redact_kept() == 0  # once done, the clean-up is not run again
    finally:
        store.close()
