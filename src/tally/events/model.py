"""The canonical event: one immutable, versioned record of one provider action.

Pure. The idempotency key is provider + provider transaction id + kind: the same key
with the same content is a duplicate (counted once), with other content a conflict.
An operator's partner feed reports in a namespace of its own (``feed:<operator>:...``),
so a feed can never take the key of the provider's own event (its callback or report).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from enum import StrEnum

from tally.kernel.values import value

SCHEMA_VERSION = 1
# The years an event's times may be written in. Any instant in them converts to every
# time zone without leaving datetime's range, so no period, contract or FX lookup can
# overflow on an event that was accepted (a year-9999 time would stop settlement).
FIRST_YEAR = 1970
LAST_YEAR = 8999


class EventKind(StrEnum):
    BET = "bet"
    WIN = "win"
    ROLLBACK = "rollback"  # voids an earlier bet or win, named by ``ref``
    JACKPOT_WIN = "jackpot_win"
    BONUS_WIN = "bonus_win"  # a bonus or free-spin win
    ROUND_END = "round_end"
    ADJUSTMENT = "adjustment"


class Source(StrEnum):
    """Who reported an event. Set by Tally at the door it came in by, never by the sender;
    an event logged before sources existed is the provider's own."""

    PROVIDER = "provider"  # the provider's callback or report
    FEED = "feed"  # an operator's partner feed


class Channel(StrEnum):
    WEB = "web"
    MOBILE = "mobile"
    API = "api"


def in_time_range(when: datetime) -> bool:
    return FIRST_YEAR <= when.year <= LAST_YEAR


def idempotency_key(provider: str, provider_tx_id: str, kind: str) -> str:
    return f"{provider}:{provider_tx_id}:{kind}"


# A rollback's ``ref`` may name the provider's transaction without its kind (a batch
# report's bare ``ref``): ``provider:tx_id:*``, resolved by settlement against the
# provider's transactions of the kinds a rollback can void.
ANY_KIND = "*"
VOIDABLE = (
    EventKind.BET,
    EventKind.WIN,
    EventKind.JACKPOT_WIN,
    EventKind.BONUS_WIN,
    EventKind.ADJUSTMENT,
)


def any_kind_key(key: str) -> str:
    """``provider:tx_id:*`` for the idempotency key ``provider:tx_id:kind``."""
    return key[: key.rfind(":") + 1] + ANY_KIND


def candidates(ref: str) -> tuple[str, ...]:
    """The keys a ``ref`` may name: itself, or for ``provider:tx_id:*`` each voidable kind."""
    if not ref.endswith(":" + ANY_KIND):
        return (ref,)
    stem = ref[: -len(ANY_KIND)]
    return tuple(stem + kind.value for kind in VOIDABLE)


FEED_PREFIX = "feed:"


def feed_key(operator: str, key: str) -> str:
    """The key of ``operator``'s feed report of the transaction whose provider key is
    ``key``: apart from the provider's own, so the two never collide."""
    return f"{FEED_PREFIX}{operator}:{key}"


@value
class Event:
    provider: str
    provider_tx_id: str
    kind: EventKind
    round_id: str
    operator: str
    player: str  # pseudonymous
    game: str
    game_type: str
    amount: int  # minor units of ``currency``; may be negative only for adjustments
    currency: str
    occurred_at: datetime  # the provider's clock, with its own offset kept
    recorded_at: datetime  # ours, UTC
    channel: Channel = Channel.WEB
    region: str = ""
    agent: str = ""  # the partner-tree agent (store) the player belongs to
    ref: str = ""  # rollback: the idempotency key of the event it voids
    raw: str = ""  # the payload as received
    schema_version: int = SCHEMA_VERSION
    # Optional in the schema (absent: the provider's), so events logged before it still read.
    source: Source = Source.PROVIDER

    @property
    def key(self) -> str:
        key = idempotency_key(self.provider, self.provider_tx_id, self.kind.value)
        return feed_key(self.operator, key) if self.source is Source.FEED else key


# What makes two deliveries "the same event": everything but when we recorded it and the
# bytes it came in (a provider's retry may differ in formatting or headers).
_IDENTITY = tuple(f.name for f in fields(Event) if f.name not in ("recorded_at", "raw"))


def same_content(a: Event, b: Event) -> bool:
    return all(getattr(a, name) == getattr(b, name) for name in _IDENTITY)


def first_difference(a: Event, b: Event) -> str | None:
    for name in _IDENTITY:
        if getattr(a, name) != getattr(b, name):
            return name
    return None
