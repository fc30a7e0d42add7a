"""Partner feeds: an operator pushes its channel transactions (web, mobile, third-party
API) in bulk, as canonical events, over HTTP or a NATS subject.

A push is a JSON array of events, or JSON Lines, for one operator. Each item is answered
on its own (accepted, duplicate, conflict or rejected with its reason); refused items
and conflicts are kept in the input quarantine. ``recorded_at`` is always ours.

A feed's events are the operator's reports, not the provider's: their source is ``feed``
(set here, never by the sender) and their keys live in the feed's own namespace
(``feed:<operator>:<provider>:<tx>:<kind>``), so a report can never take the key of the
provider's own event, whichever comes first. A rollback's ``ref`` is read in the same
namespace: it voids the feed's own report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tally.events import codec
from tally.events.codec import EventDecodeError
from tally.events.model import Event, Source, feed_key
from tally.events.ports import Appended, EventLog
from tally.ingest.lines import is_clean_text
from tally.kernel.clock import Clock
from tally.kernel.limits import ApiLimits, json_too_deep
from tally.quarantine.inputs import InputQuarantine, Quarantined, Reason, Refused
from tally.quarantine.redrive import RedriveOutcome

# The event's texts that come from the sender (raw is the item as received, kept escaped).
TEXT_FIELDS = (
    "provider",
    "provider_tx_id",
    "round_id",
    "operator",
    "player",
    "game",
    "game_type",
    "region",
    "agent",
    "ref",
)
FEED_MAX_ITEMS = 5_000  # events in one push
FEED_MAX_BYTES = ApiLimits().feed_body_max_bytes  # bytes in one push: one figure, the edge's


# The json module recurses once per level of nesting; a body of a few thousand "[" would
# exhaust the stack. An event is a flat object, so anything that deep is simply malformed.
TOO_DEEP = "nested too deeply"


class FeedRefused(ValueError):
    """The push as a whole cannot be read (nothing of it was taken)."""


@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    outcome: str  # accepted, duplicate, conflict, rejected
    key: str = ""
    position: int = 0
    reason: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "outcome": self.outcome,
            "key": self.key,
            "position": self.position,
            "reason": self.reason,
            "detail": self.detail,
        }


def split_items(body: bytes) -> list[tuple[str, Any]]:
    """(the item's text, its parsed value): a JSON array, or JSON Lines."""
    if len(body) > FEED_MAX_BYTES:
        raise FeedRefused(f"a push carries at most {FEED_MAX_BYTES} bytes")
    try:
        text = body.decode("utf-8-sig")  # a leading byte-order mark is not content
    except UnicodeDecodeError:
        raise FeedRefused("the body is not UTF-8") from None
    stripped = text.lstrip()
    items: list[tuple[str, Any]] = []
    if stripped.startswith("["):
        if json_too_deep(text):
            raise FeedRefused(f"not JSON: {TOO_DEEP}")
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise FeedRefused(f"not JSON: {exc}") from None
        except RecursionError:
            raise FeedRefused(f"not JSON: {TOO_DEEP}") from None
        items = [(json.dumps(v, separators=(",", ":")), v) for v in values]
    else:
        for line in text.splitlines():
            if not line.strip():
                continue
            if json_too_deep(line):
                items.append((line, f"not JSON: {TOO_DEEP}"))
                continue
            try:
                items.append((line, json.loads(line)))
            except ValueError as exc:
                items.append((line, f"not JSON: {exc}"))
            except RecursionError:
                items.append((line, f"not JSON: {TOO_DEEP}"))
    if len(items) > FEED_MAX_ITEMS:
        raise FeedRefused(f"a push carries at most {FEED_MAX_ITEMS} events")
    return items


def _feed_ref(operator: str, ref: str) -> str:
    """A feed rollback's original, among the feed's own reports. It may be named as the
    provider names it (``provider:tx:kind``) or by the key the feed's answer gave."""
    if not ref or ref.startswith(feed_key(operator, "")):
        return ref
    return feed_key(operator, ref)


class FeedService:
    def __init__(self, log: EventLog, quarantine: InputQuarantine, clock: Clock) -> None:
        self.log = log
        self.quarantine = quarantine
        self.clock = clock

    def _event(
        self,
        operator: str,
        text: str,
        value: Any,
        now: datetime,
        providers: frozenset[str] | None,
    ) -> Event | ItemResult:
        if isinstance(value, str):
            return ItemResult(-1, "rejected", reason=Reason.MALFORMED.value, detail=value)
        if not isinstance(value, dict):
            return ItemResult(
                -1, "rejected", reason=Reason.MALFORMED.value, detail="an event is a JSON object"
            )
        data = {**value, "recorded_at": now.isoformat(), "raw": text}
        try:
            decoded = codec.from_dict(data)
        except EventDecodeError as exc:
            return ItemResult(-1, "rejected", reason=Reason.MALFORMED.value, detail=str(exc))
        event = replace(decoded, source=Source.FEED, ref=_feed_ref(operator, decoded.ref))
        if decoded.source is not Source.FEED and "source" in value:
            return ItemResult(
                -1,
                "rejected",
                key=event.key,
                reason=Reason.FORBIDDEN.value,
                detail=f"source: a feed's events are the feed's, not {decoded.source.value!r}",
            )
        unclean = [name for name in TEXT_FIELDS if not is_clean_text(getattr(event, name))]
        if unclean:
            return ItemResult(
                -1,
                "rejected",
                reason=Reason.MALFORMED.value,
                detail=f"{', '.join(unclean)}: a NUL or a lone surrogate is not text",
            )
        if event.operator != operator:
            return ItemResult(
                -1,
                "rejected",
                key=event.key,
                reason=Reason.FORBIDDEN.value,
                detail=f"this feed is {operator!r}'s; the event is {event.operator!r}'s",
            )
        if providers is not None and event.provider not in providers:
            allowed = ", ".join(sorted(providers)) or "none"
            return ItemResult(
                -1,
                "rejected",
                key=event.key,
                reason=Reason.FORBIDDEN.value,
                detail=(
                    f"this feed may not report for provider {event.provider!r} "
                    f"(its key's providers: {allowed})"
                ),
            )
        return event

    def push(
        self,
        operator: str,
        body: bytes,
        channel: str = "http",
        *,
        providers: frozenset[str] | None = None,
    ) -> list[ItemResult]:
        """Take a push for ``operator``; one result per item, in order. ``providers``: the
        only providers the sender may report for (its key's), None for any (staff, or a
        channel whose sender the transport vouches for)."""
        items = split_items(body)
        now = self.clock.now()
        parsed = [self._event(operator, text, value, now, providers) for text, value in items]
        events = [p for p in parsed if isinstance(p, Event)]
        appended = iter(self.log.append(events) if events else [])
        results: list[ItemResult] = []
        for index, ((text, _), item) in enumerate(zip(items, parsed, strict=True)):
            if isinstance(item, ItemResult):
                result = ItemResult(index, item.outcome, item.key, 0, item.reason, item.detail)
                self._keep(operator, channel, text, Reason(item.reason), item.detail, now, item.key)
            else:
                done = next(appended)
                if done.outcome is Appended.CONFLICT:
                    detail = f"logged before with another {done.differs_in}"
                    self._keep(operator, channel, text, Reason.CONFLICT, detail, now, item.key)
                    result = ItemResult(
                        index, "conflict", item.key, done.position, "conflict", detail
                    )
                else:
                    result = ItemResult(index, done.outcome.value, item.key, done.position)
            results.append(result)
        return results

    def redrive(self, entry: Quarantined) -> RedriveOutcome:
        operator = entry.refused.headers.get("x-tally-operator", "")
        (result,) = self.push(operator, entry.refused.payload.encode(), channel="redrive")
        if result.outcome in ("accepted", "duplicate"):
            return RedriveOutcome(True, f"{result.outcome} at position {result.position}")
        return RedriveOutcome(False, f"{result.reason}: {result.detail}")

    def _keep(
        self,
        operator: str,
        channel: str,
        text: str,
        reason: Reason,
        detail: str,
        now: datetime,
        key: str,
    ) -> None:
        if channel == "redrive":
            return  # a re-drive answers; its entry is already kept
        self.quarantine.put(
            Refused(
                source="feed",
                channel=f"{operator} ({channel})",
                reason=reason,
                detail=detail,
                payload=text,
                received_at=now,
                headers={"x-tally-operator": operator},
                key=key,
            )
        )
