"""One line of a provider's batch report, as a canonical event or a refusal. Pure.

The report format (CSV with a header row, or JSON Lines with the same names):
``tx_id, kind, operator, player, game_type, amount, occurred_at`` (required), and
``round_id, game, currency, channel, region, agent, ref`` (optional). Amounts are decimal
strings in the currency's unit, parsed exactly (excess precision is refused, never
rounded). ``occurred_at`` without an offset is read in the file's time zone and kept
with that zone's offset; ``ref`` (a rollback's original) is the provider's transaction
id (of any kind: settlement finds the one transaction of that id, and refuses a ``ref``
that names two), or a full idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any

from tally.events.model import (
    ANY_KIND,
    FIRST_YEAR,
    LAST_YEAR,
    Channel,
    Event,
    EventKind,
    idempotency_key,
    in_time_range,
)
from tally.kernel.currency import is_known
from tally.kernel.money import MoneyError, parse_amount
from tally.quarantine.inputs import Reason

REQUIRED = ("tx_id", "kind", "operator", "player", "game_type", "amount", "occurred_at")
OPTIONAL = ("round_id", "game", "currency", "channel", "region", "agent", "ref")
FIELD_MAX = 256  # characters in any one field


@dataclass(frozen=True, slots=True)
class ReportFormat:
    provider: str
    zone: tzinfo  # the provider's own time zone, for times written without an offset
    currency: str = ""  # the report's currency when lines do not name one


@dataclass(frozen=True, slots=True)
class LineRefusal:
    reason: Reason
    detail: str


FIELDS = REQUIRED + OPTIONAL
_KNOWN = frozenset(FIELDS)


def is_clean_text(value: str) -> bool:
    """No NUL and no lone surrogate (JSON escapes can make both): text every store, file
    and export can hold as it is."""
    if "\0" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _texts(data: dict[str, Any], raw: str) -> dict[str, str]:
    """Every known field as stripped text ("" when absent or null), each read once.

    ``raw`` is the line the fields were read from. If it is short, plain ASCII and has
    no NUL and no backslash (so no JSON escape could make one), every field read from it
    is clean and short too, and only the types are checked."""
    plain = (
        bool(raw)
        and len(raw) <= FIELD_MAX
        and raw.isascii()
        and "\0" not in raw
        and "\\" not in raw
    )
    out: dict[str, str] = {}
    for name in FIELDS:
        value = data.get(name)
        if value is None:
            out[name] = ""
            continue
        if not isinstance(value, str):
            raise ValueError(f"{name} must be text")
        if not plain:
            if len(value) > FIELD_MAX:
                raise ValueError(f"{name} is longer than {FIELD_MAX} characters")
            if not is_clean_text(value):
                raise ValueError(f"{name} holds a NUL or a lone surrogate")
        out[name] = value.strip()
    return out


def to_event(
    fmt: ReportFormat, data: dict[str, Any], raw: str, now: datetime
) -> Event | LineRefusal:
    try:
        f = _texts(data, raw)
        missing = [n for n in REQUIRED if not f[n]]
        if missing:
            return LineRefusal(Reason.MALFORMED, f"missing {', '.join(missing)}")
        unknown = sorted(data.keys() - _KNOWN)
        if unknown:
            return LineRefusal(Reason.MALFORMED, f"unknown fields {', '.join(unknown)}")
        try:
            kind = EventKind(f["kind"])
        except ValueError:
            return LineRefusal(Reason.MALFORMED, f"kind {data.get('kind')!r} is not an event kind")
        try:
            channel = Channel(f["channel"] or "web")
        except ValueError:
            return LineRefusal(Reason.MALFORMED, f"channel {data.get('channel')!r} is unknown")
        currency = (f["currency"] or fmt.currency).upper()
        if not is_known(currency):
            return LineRefusal(Reason.OUT_OF_RANGE, f"currency {currency!r} is unknown")
        try:
            amount = parse_amount(
                f["amount"], currency, allow_negative=kind is EventKind.ADJUSTMENT
            )
        except MoneyError as exc:
            return LineRefusal(Reason.OUT_OF_RANGE, f"amount: {exc}")
        try:
            occurred = datetime.fromisoformat(f["occurred_at"])
        except ValueError:
            return LineRefusal(Reason.MALFORMED, "occurred_at is not an ISO 8601 time")
        if not in_time_range(occurred):
            return LineRefusal(
                Reason.OUT_OF_RANGE, f"occurred_at is not in the years {FIRST_YEAR} to {LAST_YEAR}"
            )
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=fmt.zone)
            # Keep the zone's offset at that instant, not the zone object (the event's
            # identity must not depend on how a zone is named).
            offset = occurred.utcoffset()
            assert offset is not None
            occurred = occurred.replace(tzinfo=timezone(offset))
        ref = f["ref"]
        if kind is EventKind.ROLLBACK and not ref:
            return LineRefusal(Reason.MALFORMED, "a rollback names its original in ref")
        if ref and ref.count(":") < 2:
            # A report names the transaction, not its kind: a rollback may void a win,
            # a bonus win or an adjustment as well as a bet.
            ref = idempotency_key(fmt.provider, ref, ANY_KIND)
        return Event(
            provider=fmt.provider,
            provider_tx_id=f["tx_id"],
            kind=kind,
            round_id=f["round_id"],
            operator=f["operator"],
            player=f["player"],
            game=f["game"],
            game_type=f["game_type"],
            amount=amount,
            currency=currency,
            occurred_at=occurred,
            recorded_at=now,
            channel=channel,
            region=f["region"],
            agent=f["agent"],
            ref=ref,
            raw=raw,
        )
    except ValueError as exc:
        return LineRefusal(Reason.MALFORMED, str(exc))
