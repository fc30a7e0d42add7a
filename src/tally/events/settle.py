"""Canonical events as settlement reads them, and the log as settlement's event source."""

from __future__ import annotations

from tally.events.model import Event
from tally.events.ports import EventLog
from tally.settlement.engine import SettlementEvent


def to_settlement(e: Event) -> SettlementEvent:
    return SettlementEvent(
        key=e.key,
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
    )


class LogSource:
    """Settlement's :class:`~tally.settlement.ports.EventSource` over an event log."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    def read(self, after: int, limit: int) -> list[tuple[int, SettlementEvent]]:
        return [(position, to_settlement(e)) for position, e in self.log.read(after, limit)]

    def close(self) -> None:
        close = getattr(self.log, "close", None)
        if close is not None:
            close()
