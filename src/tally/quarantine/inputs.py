"""The input quarantine: everything refused on the way in, kept with its reason.

A provider callback with a bad signature, a file line that does not parse, a feed event
for an unknown operator, an event whose key was reused with other content: each is
answered with a clear error *and* kept here with the raw payload as received, the
reason (a stable code), a human-readable detail and the time, so that a person can look
at it and, after a fix (a secret corrected, a player registered), re-drive it through
the path it came in by. Nothing is edited in place: a re-drive or a dismissal only
changes the entry's status, with who and when.

Pure: the model, the reasons and the port. Stores live in ``tally.adapters``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from tally.audit.ports import Transaction
from tally.kernel.page import Page
from tally.quarantine.redaction import redact_refused

# The most a payload kept in quarantine may hold; a larger one is cut and flagged as cut.
PAYLOAD_MAX_BYTES = 256 * 1024


class Reason(StrEnum):
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_PROVIDER = "unknown_provider"
    UNKNOWN_OPERATOR = "unknown_operator"
    UNKNOWN_PLAYER = "unknown_player"
    MALFORMED = "malformed"  # does not parse, or a field is missing or of the wrong type
    OUT_OF_RANGE = "out_of_range"  # parses, but a value is not allowed (amount, time, ...)
    CONFLICT = "conflict"  # idempotency key reused with other content
    STALE = "stale"  # outside the request timestamp window, or a replayed nonce
    FORBIDDEN = "forbidden"  # e.g. not from an allowed address


class Status(StrEnum):
    OPEN = "open"
    REDRIVEN = "redriven"  # re-driven and accepted
    DISMISSED = "dismissed"  # looked at and closed without a re-drive


def _no_headers() -> Mapping[str, str]:
    return {}


@dataclass(frozen=True, slots=True)
class Refused:
    """One refused input, as it is put into quarantine."""

    source: str  # how it came in: "callback", "file", "feed"
    channel: str  # which door: a provider name, a file name, an operator
    reason: Reason
    detail: str  # what exactly is wrong, for a person
    payload: str  # the raw body as received (text; bytes are kept as \\x escapes)
    received_at: datetime
    headers: Mapping[str, str] = field(default_factory=_no_headers)
    key: str = ""  # the idempotency key, when one could be derived


@dataclass(frozen=True, slots=True)
class Quarantined:
    id: int
    refused: Refused
    status: Status = Status.OPEN
    resolved_at: datetime | None = None
    resolved_by: str = ""
    note: str = ""


class InputQuarantine(Protocol):
    def put(self, refused: Refused) -> int:
        """Keep ``refused``; returns its id. A batch-file line (source "file", keyed by
        file and line) is kept once: putting it again returns the first entry's id."""
        ...

    def get(self, entry_id: int) -> Quarantined | None: ...

    def entries(
        self,
        *,
        status: Status | None = None,
        reason: Reason | None = None,
        source: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[Quarantined]:
        """Oldest first, ``limit`` at a time."""
        ...

    def resolve(
        self,
        entry_id: int,
        status: Status,
        *,
        by: str,
        at: datetime,
        note: str = "",
        within: Callable[[Transaction], object],
    ) -> bool:
        """Move an open entry to ``status``; False if it is not open (nothing changes).
        ``within(tx)`` runs in the same transaction once the entry moved, before it
        commits: the move's audit record goes there, so both commit or neither does."""
        ...

    def counts(self) -> dict[tuple[str, str], int]:
        """How many entries there are, by (status, reason)."""
        ...

    def close(self) -> None:
        """Release what the store holds (connections); one that holds nothing does nothing."""
        ...


def payload_text(body: bytes) -> str:
    """A payload as text for keeping: UTF-8 where it is, escapes where it is not."""
    cut = body[:PAYLOAD_MAX_BYTES]
    text = cut.decode("utf-8", errors="backslashreplace")
    return text if len(cut) == len(body) else text + "\n[cut at 256 KiB]"


def storable(text: str) -> str:
    """``text`` as every store can keep it. A JSON escape can put a NUL or a lone surrogate
    into a string, and neither PostgreSQL text nor UTF-8 can hold them: both are kept as
    backslash escapes, like undecodable payload bytes."""
    text = text.replace("\0", "\\x00")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def storable_refused(r: Refused) -> Refused:
    """``r`` with its secrets redacted (see ``redact_refused``) and every text made storable
    (see ``storable``): what every store keeps. Applied by the stores themselves, so no
    door into the quarantine can keep a secret by forgetting to redact."""
    r = redact_refused(r)
    return replace(
        r,
        source=storable(r.source),
        channel=storable(r.channel),
        detail=storable(r.detail),
        payload=storable(r.payload),
        headers={storable(k): storable(v) for k, v in r.headers.items()},
        key=storable(r.key),
    )
