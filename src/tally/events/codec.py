"""The event's JSON form: amounts as decimal strings, times ISO 8601 with their offset."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from tally.events.model import (
    FIRST_YEAR,
    LAST_YEAR,
    SCHEMA_VERSION,
    Channel,
    Event,
    EventKind,
    Source,
    in_time_range,
)
from tally.kernel.money import MoneyError, format_amount, parse_amount


class EventDecodeError(ValueError):
    """A stored or submitted event that cannot be read; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def to_dict(e: Event) -> dict[str, Any]:
    return _fields(
        e, e.kind.value, e.channel.value, e.occurred_at.isoformat(), e.recorded_at.isoformat()
    )


def dumps(e: Event) -> str:
    """Compact JSON with sorted keys (non-ASCII as UTF-8, not escaped): :func:`to_dict`'s
    bytes. orjson writes the enums and the UTC instants itself, at half the cost; an
    instant at another offset goes as ``isoformat``, since orjson cuts an offset's seconds
    (``-00:14:09`` would become ``-00:14``, another instant)."""
    return orjson.dumps(
        _fields(e, e.kind, e.channel, _instant_json(e.occurred_at), _instant_json(e.recorded_at)),
        option=orjson.OPT_SORT_KEYS,
    ).decode()


def _instant_json(when: datetime) -> datetime | str:
    return when if when.tzinfo is UTC else when.isoformat()


def _fields(
    e: Event, kind: object, channel: object, occurred: object, recorded: object
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema_version": e.schema_version,
        "provider": e.provider,
        "provider_tx_id": e.provider_tx_id,
        "kind": kind,
        "round_id": e.round_id,
        "operator": e.operator,
        "player": e.player,
        "game": e.game,
        "game_type": e.game_type,
        "amount": format_amount(e.amount, e.currency),
        "currency": e.currency,
        "occurred_at": occurred,
        "recorded_at": recorded,
        "channel": channel,
        "region": e.region,
        "agent": e.agent,
        "ref": e.ref,
        "raw": e.raw,
    }
    if e.source is not Source.PROVIDER:
        # Written only when it is not the default, so a provider's events are stored as
        # they always were (their bytes, and so their logs' deduplication, unchanged).
        out["source"] = e.source.value
    return out


def _text(data: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise EventDecodeError(name, "must be a string")
    if required and not value:
        raise EventDecodeError(name, "is required")
    return value


def _instant(data: Mapping[str, Any], name: str) -> datetime:
    text = _text(data, name)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise EventDecodeError(name, f"{text!r} is not ISO 8601") from None
    if when.tzinfo is None:
        raise EventDecodeError(name, "must carry a time zone offset")
    if not in_time_range(when):
        raise EventDecodeError(name, f"must be in the years {FIRST_YEAR} to {LAST_YEAR}")
    return when


def from_dict(data: Mapping[str, Any]) -> Event:
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise EventDecodeError("schema_version", f"{version!r} is not supported")
    try:
        kind = EventKind(_text(data, "kind"))
        channel = Channel(_text(data, "channel", required=False) or "web")
    except ValueError as exc:
        raise EventDecodeError("kind/channel", str(exc)) from None
    try:
        source = Source(_text(data, "source", required=False) or Source.PROVIDER.value)
    except ValueError as exc:
        raise EventDecodeError("source", str(exc)) from None
    currency = _text(data, "currency")
    try:
        amount = parse_amount(
            data.get("amount"), currency, allow_negative=kind is EventKind.ADJUSTMENT
        )
    except (MoneyError, ValueError) as exc:
        raise EventDecodeError("amount", str(exc)) from None
    if kind is EventKind.ROLLBACK and not _text(data, "ref", required=False):
        raise EventDecodeError("ref", "a rollback names the event it voids")
    return Event(
        provider=_text(data, "provider"),
        provider_tx_id=_text(data, "provider_tx_id"),
        kind=kind,
        round_id=_text(data, "round_id", required=False),
        operator=_text(data, "operator"),
        player=_text(data, "player"),
        game=_text(data, "game", required=False),
        game_type=_text(data, "game_type"),
        amount=amount,
        currency=currency,
        occurred_at=_instant(data, "occurred_at"),
        recorded_at=_instant(data, "recorded_at"),
        channel=channel,
        region=_text(data, "region", required=False),
        agent=_text(data, "agent", required=False),
        ref=_text(data, "ref", required=False),
        raw=_text(data, "raw", required=False),
        source=source,
    )


def loads(text: str) -> Event:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventDecodeError("body", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EventDecodeError("body", "must be a JSON object")
    return from_dict(data)


def loads_stored(text: str | bytes) -> Event:
    """An event read back from the log, which only ever holds what :func:`dumps` wrote of
    events :func:`from_dict` accepted: the fast way."""
    d = orjson.loads(text)
    if d.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        return from_dict(d)  # an older shape: read it the strict way
    currency = d["currency"]
    return Event(
        provider=d["provider"],
        provider_tx_id=d["provider_tx_id"],
        kind=EventKind(d["kind"]),
        round_id=d["round_id"],
        operator=d["operator"],
        player=d["player"],
        game=d["game"],
        game_type=d["game_type"],
        amount=parse_amount(d["amount"], currency, allow_negative=True),
        currency=currency,
        occurred_at=datetime.fromisoformat(d["occurred_at"]),
        recorded_at=datetime.fromisoformat(d["recorded_at"]),
        channel=Channel(d["channel"]),
        region=d["region"],
        agent=d["agent"],
        ref=d["ref"],
        raw=d["raw"],
        source=Source.FEED if d.get("source") == Source.FEED.value else Source.PROVIDER,
    )
