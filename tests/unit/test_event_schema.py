"""The published JSON Schema is current, and it agrees with the codec on what is valid."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.events import codec
from tally.events.codec import EventDecodeError
from tally.events.model import FIRST_YEAR, LAST_YEAR, Channel, Event, EventKind, Source
from tally.events.schema import event_schema, schema_text
from tally.settlement.source import stored_to_settlement, to_settlement

PUBLISHED = Path(__file__).parents[2] / "docs" / "reference" / "event.schema.json"
VALIDATOR = jsonschema_rs.validator_for(event_schema())


def sample(**kw: object) -> Event:
    base = Event(
        provider="acme",
        provider_tx_id="tx-1",
        kind=EventKind.BET,
        round_id="r-1",
        operator="op1",
        player="p-1",
        game="acme-slot",
        game_type="slots",
        amount=1_050,
        currency="EUR",
        occurred_at=datetime(2026, 3, 2, 21, 30, tzinfo=timezone(timedelta(hours=9))),
        recorded_at=datetime(2026, 3, 2, 12, 30, 0, 123456, tzinfo=UTC),
        channel=Channel.MOBILE,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_the_published_schema_is_the_generated_one() -> None:
    assert PUBLISHED.read_text() == schema_text(), (
        "docs/reference/event.schema.json is stale: regenerate it with "
        "`tally events schema > docs/reference/event.schema.json`"
    )


@given(
    kind=st.sampled_from(list(EventKind)),
    amount=st.integers(min_value=0, max_value=10**15),
    currency=st.sampled_from(["EUR", "JPY", "BTC", "USD"]),
    channel=st.sampled_from(list(Channel)),
)
def test_every_encoded_event_is_valid_under_the_schema(
    kind: EventKind, amount: int, currency: str, channel: Channel
) -> None:
    event = sample(
        kind=kind,
        amount=-amount if kind is EventKind.ADJUSTMENT else amount,
        currency=currency,
        channel=channel,
        ref="acme:tx-0:bet" if kind is EventKind.ROLLBACK else "",
    )
    data = codec.to_dict(event)
    assert VALIDATOR.is_valid(data), list(VALIDATOR.iter_errors(data))
    assert codec.from_dict(data) == event


def _changed(change: dict[str, Any]) -> dict[str, Any]:
    data = codec.to_dict(sample())
    for k, v in change.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    return data


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 10.5},  # a number, not a string
        {"amount": "-1.00"},  # negative outside an adjustment
        {"currency": "XXX"},
        {"kind": "deposit"},
        {"occurred_at": "2026-03-02T21:30:00"},  # no offset
        {"operator": ""},
        {"player": None},
        {"schema_version": 2},
        {"kind": "rollback"},  # a rollback without ref
        {"occurred_at": "9999-12-31T23:00:00-05:00"},  # would overflow in any later zone
        {"occurred_at": "0001-01-01T00:00:00+09:00"},
        {"occurred_at": "1969-12-31T23:59:59Z"},
        {"source": "partner"},
        {"source": 1},
    ],
)
def test_the_schema_and_the_codec_both_refuse_what_is_malformed(change: dict[str, Any]) -> None:
    data = _changed(change)
    assert not VALIDATOR.is_valid(data)
    with pytest.raises(EventDecodeError):
        codec.from_dict(data)


def test_excess_precision_is_refused_by_the_codec_the_schema_cannot_know_scales() -> None:
    # The schema checks the shape of a decimal; the number of places per currency is the
    # codec's (the currency list is in the schema, the scales are not expressible there).
    data = _changed({"amount": "10.505"})
    with pytest.raises(EventDecodeError):
        codec.from_dict(data)
    assert json.loads(PUBLISHED.read_text())["properties"]["amount"]["type"] == "string"


@given(
    kind=st.sampled_from(list(EventKind)),
    amount=st.integers(min_value=0, max_value=10**15),
    currency=st.sampled_from(["EUR", "JPY", "BTC", "KWD"]),
    source=st.sampled_from(list(Source)),
)
def test_the_fast_read_of_a_stored_event_equals_the_strict_one(
    kind: EventKind, amount: int, currency: str, source: Source
) -> None:
    event = sample(
        kind=kind,
        amount=-amount if kind is EventKind.ADJUSTMENT else amount,
        currency=currency,
        ref="acme:tx-0:bet" if kind is EventKind.ROLLBACK else "",
        source=source,
    )
    text = codec.dumps(event)
    assert codec.loads_stored(text) == codec.loads(text) == event
    assert stored_to_settlement(text) == to_settlement(event)


@pytest.mark.parametrize("year", [FIRST_YEAR - 1, FIRST_YEAR, LAST_YEAR, LAST_YEAR + 1])
def test_the_schema_and_the_codec_agree_on_the_first_and_last_year(year: int) -> None:
    data = _changed({"occurred_at": f"{year:04d}-06-15T12:00:00+14:00"})
    in_range = FIRST_YEAR <= year <= LAST_YEAR
    assert VALIDATOR.is_valid(data) is in_range
    if in_range:
        assert codec.from_dict(data).occurred_at.year == year
    else:
        with pytest.raises(EventDecodeError, match="occurred_at: must be in the years"):
            codec.from_dict(data)


_ZONES = [
    ZoneInfo(z) for z in ("Europe/Malta", "Asia/Kolkata", "America/St_Johns", "Africa/Monrovia")
]


@given(
    when=st.datetimes(
        min_value=datetime(FIRST_YEAR, 1, 2),
        max_value=datetime(LAST_YEAR, 12, 30),
        timezones=st.one_of(
            st.just(UTC),
            st.sampled_from(_ZONES),
            # Offsets with seconds (historical local mean times) must keep them.
            st.integers(-86_399, 86_399).map(lambda s: timezone(timedelta(seconds=s))),
        ),
    ),
    kind=st.sampled_from(list(EventKind)),
    channel=st.sampled_from(list(Channel)),
    raw=st.text(),
)
def test_dumps_writes_exactly_the_dict_form_sorted(
    when: datetime, kind: EventKind, channel: Channel, raw: str
) -> None:
    event = sample(
        occurred_at=when, recorded_at=when.astimezone(UTC), kind=kind, channel=channel, raw=raw
    )
    text = codec.dumps(event)
    assert text == json.dumps(
        codec.to_dict(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert datetime.fromisoformat(json.loads(text)["occurred_at"]).utcoffset() == when.utcoffset()


# An event as the log stored it before events had a source: byte for byte what
# ``codec.dumps`` wrote then.
OLD_STORED = (
    '{"agent":"","amount":"10.50","channel":"mobile","currency":"EUR","game":"acme-slot",'
    '"game_type":"slots","kind":"bet","occurred_at":"2026-03-02T21:30:00+09:00",'
    '"operator":"op1","player":"p-1","provider":"acme","provider_tx_id":"tx-1","raw":"{}",'
    '"recorded_at":"2026-03-02T12:30:00.123456+00:00","ref":"","region":"","round_id":"r-1",'
    '"schema_version":1}'
)


def test_an_event_logged_before_sources_existed_reads_as_the_providers_own() -> None:
    assert VALIDATOR.is_valid(json.loads(OLD_STORED))
    for read in (codec.loads, codec.loads_stored):
        event = read(OLD_STORED)
        assert event == sample(raw="{}")
        assert (event.source, event.key) == (Source.PROVIDER, "acme:tx-1:bet")
    settled = stored_to_settlement(OLD_STORED)
    assert (settled.key, settled.from_feed) == ("acme:tx-1:bet", False)
    assert settled.twin == "feed:op1:acme:tx-1:bet"  # what a feed's report of it is keyed
    # A provider's event is stored as it always was, so a retry still finds it the same.
    assert codec.dumps(sample(raw="{}")) == OLD_STORED


def test_a_feed_event_keeps_its_source_and_its_own_key_through_the_log() -> None:
    event = sample(source=Source.FEED)
    assert event.key == "feed:op1:acme:tx-1:bet"
    assert event.key != sample().key
    text = codec.dumps(event)
    assert json.loads(text)["source"] == "feed"
    assert VALIDATOR.is_valid(json.loads(text))
    assert codec.loads_stored(text) == codec.loads(text) == event
    settled = stored_to_settlement(text)
    assert settled == to_settlement(event)
    assert (settled.key, settled.twin, settled.from_feed) == (
        "feed:op1:acme:tx-1:bet",
        "acme:tx-1:bet",
        True,
    )
