"""Canonical events as settlement reads them, and the event log as settlement's source.

Settlement reads events; events know nothing of settlement (imports point down).
"""

from __future__ import annotations

from datetime import datetime

import orjson

from tally.events import codec
from tally.events.model import (
    SCHEMA_VERSION,
    Event,
    EventKind,
    Source,
    feed_key,
    idempotency_key,
)
from tally.events.ports import EventLog
from tally.kernel.money import parse_amount
from tally.settlement.engine import SettlementEvent

_KINDS = {kind.value: kind for kind in EventKind}
# Kinds whose report by a feed and by the provider are one transaction (see ``twin``).
_UNTWINNED = frozenset({EventKind.ROLLBACK, EventKind.ROUND_END})


def _keys(
    provider: str, tx: str, kind: EventKind, operator: str, source: Source
) -> tuple[str, str]:
    """(the event's key, its twin's): a feed report and the provider's own event of one
    transaction name each other, so settlement counts the provider's and only it."""
    own = idempotency_key(provider, tx, kind.value)
    if source is Source.FEED:
        return feed_key(operator, own), ("" if kind in _UNTWINNED else own)
    return own, ("" if kind in _UNTWINNED else feed_key(operator, own))


def to_settlement(e: Event) -> SettlementEvent:
    key, twin = _keys(e.provider, e.provider_tx_id, e.kind, e.operator, e.source)
    return SettlementEvent(
        key=key,
        kind=e.kind,
        provider=e.provider,
        operator=e.operator,
        player=e.player,
        game_type=e.game_type,
        amount=e.amount,
        currency=e.currency,
        occurred_at=e.occurred_at,
        ref=e.ref,
        agent=e.agent,
        region=e.region,
        twin=twin,
        from_feed=e.source is Source.FEED,
    )


def stored_to_settlement(body: str | bytes) -> SettlementEvent:
    """A stored body (what :func:`codec.dumps` wrote) straight to what settlement needs,
    without the whole :class:`Event` on the way: settlement reads every event."""
    d = orjson.loads(body)
    if d.get("schema_version") != SCHEMA_VERSION:
        return to_settlement(codec.from_dict(d))  # an older shape: read it the strict way
    provider, kind, currency, operator = (
        d["provider"],
        _KINDS[d["kind"]],
        d["currency"],
        d["operator"],
    )
    source = Source.FEED if d.get("source") == Source.FEED.value else Source.PROVIDER
    key, twin = _keys(provider, d["provider_tx_id"], kind, operator, source)
    return SettlementEvent(
        key,
        kind,
        provider,
        operator,
        d["player"],
        d["game_type"],
        parse_amount(d["amount"], currency, allow_negative=True),
        currency,
        datetime.fromisoformat(d["occurred_at"]),
        d["ref"],
        d["agent"],
        d["region"],
        twin,
        source is Source.FEED,
    )


class LogSource:
    """Settlement's :class:`~tally.settlement.ports.EventSource` over an event log."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    def read(self, after: int, limit: int) -> list[tuple[int, SettlementEvent]]:
        return [
            (position, stored_to_settlement(body))
            for position, body in self.log.read_stored(after, limit)
        ]

    def close(self) -> None:
        self.log.close()

    def committed(self, position: int) -> None:
        """Nothing is redelivered: nothing to acknowledge."""
