"""Plays as settlement events, bypassing provider protocols (for settlement-only runs)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from tally.events.model import Event, EventKind, idempotency_key
from tally.settlement.engine import SettlementEvent
from tally.settlement.source import to_settlement
from tally.simulation.activity import Play

# Settlement never reads recorded_at; a fixed value keeps simulated events reproducible.
SIMULATION_RECORDED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def event_key(provider: str, tx_id: str, kind: str) -> str:
    """The canonical idempotency key: provider + provider transaction id + kind."""
    return idempotency_key(provider, tx_id, kind)


def to_settlement_events(plays: Iterable[Play]) -> list[SettlementEvent]:
    """Plays as settlement reads them (the canonical events, mapped for settlement)."""
    return [to_settlement(e) for e in to_events(plays, SIMULATION_RECORDED_AT)]


def to_events(plays: Iterable[Play], recorded_at: datetime) -> list[Event]:
    """Plays as the canonical events a provider adapter would produce."""
    return [
        Event(
            provider=p.provider,
            provider_tx_id=p.tx_id,
            kind=EventKind(p.kind),
            round_id=p.round_id,
            operator=p.operator,
            player=p.player,
            game=p.game,
            game_type=p.game_type,
            amount=0 if p.kind == "rollback" else p.amount,
            currency=p.currency,
            occurred_at=p.occurred_at,
            recorded_at=recorded_at,
            region=p.region,
            agent=p.agent,
            ref=event_key(p.provider, p.ref, "bet") if p.ref else "",
        )
        for p in plays
    ]
