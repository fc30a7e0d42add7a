"""Plays as settlement events, bypassing provider protocols (for settlement-only runs)."""

from __future__ import annotations

from collections.abc import Iterable

from tally.settlement.engine import EventKind, SettlementEvent
from tally.simulation.activity import Play


def event_key(provider: str, tx_id: str, kind: str) -> str:
    """The canonical idempotency key: provider + provider transaction id + kind."""
    return f"{provider}:{tx_id}:{kind}"


def to_settlement_events(plays: Iterable[Play]) -> list[SettlementEvent]:
    return [
        SettlementEvent(
            key=event_key(p.provider, p.tx_id, p.kind),
            kind=EventKind(p.kind),
            provider=p.provider,
            operator=p.operator,
            player=p.player,
            game_type=p.game_type,
            amount=0 if p.kind == "rollback" else p.amount,
            currency=p.currency,
            occurred_at=p.occurred_at,
            ref=event_key(p.provider, p.ref, "bet") if p.ref else "",
            agent=p.agent,
            region=p.region,
        )
        for p in plays
    ]
