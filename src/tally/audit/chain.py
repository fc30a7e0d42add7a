"""Hash-chained audit records and their verification. Pure: no I/O.

Each record carries the hash of the record before it, and its own hash is an
HMAC-SHA256 (keyed with the audit key) over its content and that previous hash.
Editing, deleting, inserting or reordering records breaks the chain in a way
:func:`verify` can name. A keyed hash means someone with write access to the
database but without the key cannot forge a consistent chain. The storage
sequence number is deliberately *not* hashed: the chain itself is the order.

The chain's head (last sequence number and hash) is sealed with the same key and
kept beside the records, so cutting records off the end is detected too.

What the file alone cannot show is a rollback: a copy of the file saved earlier and
restored (records and sealed head agree), or the records and the head deleted together.
So the head is also published where whoever holds the file cannot take it back (each
export's signed manifest, the metrics), and :func:`verify` checks the trail against such
*anchors*: it must still hold the anchored record and reach at least as far. And an
empty trail beside a store that holds what is always audited (users) is not intact.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from tally.kernel.clock import require_utc

GENESIS = "0" * 64
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What happened: who did what to which target, when, from where, before and after."""

    actor: str  # "user:<id>", "api_key:<id>", "anonymous:<name>", "system", "rule:<name>"
    action: str  # past tense, dotted: "user.created", "login.failed", "export.created"
    target: str  # what was changed: "user:<id>", "api_key:<id>", "period:2026-01"
    at: datetime
    source: str = ""  # where from: client address, "cli", ...
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    detail: Mapping[str, Any] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        # Stored and hashed as UTC, so a round trip through any database hashes the same.
        object.__setattr__(self, "at", require_utc(self.at).astimezone(UTC))


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    entry: AuditEntry
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The last record of the chain, sealed so that a cut-off tail is noticed."""

    seq: int
    hash: str
    seal: str


_ANCHOR = re.compile(r"^(\d+):([0-9a-f]{64})$")


@dataclass(frozen=True, slots=True)
class Anchor:
    """A head published outside the store: the trail must still hold it, and not end before."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """``SEQ:HASH``, as ``str(anchor)`` writes it."""
        match = _ANCHOR.match(text.strip().lower())
        if match is None:
            raise ValueError(f"an anchor is SEQ:HASH (a number, a colon, 64 hex digits): {text!r}")
        return cls(int(match.group(1)), match.group(2))

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


class Finding(StrEnum):
    EDITED = "edited"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    finding: Finding
    detail: str


def _jsonable(value: Mapping[str, Any] | None) -> Any:
    return None if value is None else dict(value)


def entry_to_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "at": entry.at.isoformat(),
        "source": entry.source,
        "before": _jsonable(entry.before),
        "after": _jsonable(entry.after),
        "detail": dict(entry.detail),
    }


def canonical(entry: AuditEntry, prev_hash: str) -> bytes:
    """The exact bytes that are hashed: sorted keys, no spaces, UTC ISO times."""
    body = entry_to_dict(entry)
    body["prev_hash"] = prev_hash
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Sealer:
    """Computes record hashes and head seals with the audit key."""

    def __init__(self, key: bytes) -> None:
        assert len(key) >= 32, "the audit key must be at least 32 bytes"
        self._key = key

    def record_hash(self, entry: AuditEntry, prev_hash: str) -> str:
        return hmac.new(self._key, canonical(entry, prev_hash), hashlib.sha256).hexdigest()

    def seal_head(self, seq: int, last_hash: str) -> str:
        message = f"head:{seq}:{last_hash}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def next_record(
        self, head: AuditHead | None, entry: AuditEntry
    ) -> tuple[AuditRecord, AuditHead]:
        """The record that follows ``head`` and the new sealed head."""
        seq = head.seq + 1 if head else 1
        prev = head.hash if head else GENESIS
        digest = self.record_hash(entry, prev)
        record = AuditRecord(seq=seq, entry=entry, prev_hash=prev, hash=digest)
        return record, AuditHead(seq=seq, hash=digest, seal=self.seal_head(seq, digest))


def verify(
    records: Sequence[AuditRecord],
    sealer: Sealer,
    head: AuditHead | None,
    *,
    anchors: Sequence[Anchor] = (),
    kept: str = "",
) -> list[Problem]:
    """Every problem found in ``records`` (in storage order); empty means intact.

    ``anchors``: heads published earlier (see :class:`Anchor`). ``kept``: what the store
    holds that is always audited ("3 users"), if anything: an empty trail beside it was
    wiped."""
    found = _Findings()
    _check_links(records, sealer, found)
    _check_head(records, head, kept, sealer, found)
    _check_anchors(records, anchors, found)
    return sorted(found.problems.values(), key=lambda p: p.seq)


class _Findings:
    """The problems found so far, one per record; the first finding for a record stands
    unless a later, surer one overrides it."""

    def __init__(self) -> None:
        self.problems: dict[int, Problem] = {}

    def report(self, seq: int, finding: Finding, detail: str, *, override: bool = False) -> None:
        if override or seq not in self.problems:
            self.problems[seq] = Problem(seq, finding, detail)


def _check_links(records: Sequence[AuditRecord], sealer: Sealer, found: _Findings) -> None:
    """Each record's content against its hash, and its link against the record before it."""
    report = found.report
    positions = {r.hash: i for i, r in enumerate(records)}
    for i, record in enumerate(records):
        expected_prev = records[i - 1].hash if i else GENESIS
        intact = hmac.compare_digest(
            sealer.record_hash(record.entry, record.prev_hash), record.hash
        )
        linked = record.prev_hash == expected_prev
        if linked and intact:
            continue
        if linked:
            report(record.seq, Finding.EDITED, "content does not match its hash")
            continue
        if not intact:
            # Neither its content nor its link fits: a record that was never in the chain.
            report(record.seq, Finding.INSERTED, "forged record: hash and link both wrong")
            continue
        j = positions.get(record.prev_hash)
        if j is None:
            prev_seq = records[i - 1].seq if i else 0
            if record.seq - prev_seq > 2:
                detail = f"records {prev_seq + 1}..{record.seq - 1} missing before it"
            elif record.seq - prev_seq == 2:
                detail = f"record {prev_seq + 1} missing before it"
            else:
                detail = "a record before it is missing"
            report(record.seq, Finding.DELETED, detail)
        elif j < i - 1 and all(_forged(records[k], sealer) for k in range(j + 1, i)):
            # The chain skips over records j+1..i-1: they were put in afterwards.
            for k in range(j + 1, i):
                report(records[k].seq, Finding.INSERTED, "not part of the chain", override=True)
        else:
            report(record.seq, Finding.REORDERED, "out of place in the chain")


def _check_head(
    records: Sequence[AuditRecord],
    head: AuditHead | None,
    kept: str,
    sealer: Sealer,
    found: _Findings,
) -> None:
    """The sealed head against the chain's last record (cut back, appended to, or wiped)."""
    report = found.report
    last = records[-1] if records else None
    if head is not None:
        if not hmac.compare_digest(sealer.seal_head(head.seq, head.hash), head.seal):
            report(head.seq, Finding.EDITED, "the chain head's seal is wrong")
        elif last is None or last.seq < head.seq:
            report(head.seq, Finding.TRUNCATED, "records at the end of the chain are missing")
        elif last.seq > head.seq:
            for r in records:
                if r.seq > head.seq:
                    report(r.seq, Finding.INSERTED, "appended after the sealed head", override=True)
        elif last.hash != head.hash:
            report(last.seq, Finding.EDITED, "last record differs from the sealed head")
    elif records:
        report(records[0].seq, Finding.TRUNCATED, "the chain head is missing")
    elif kept:
        report(0, Finding.TRUNCATED, f"the trail is empty but the store holds {kept}: wiped")


def _check_anchors(
    records: Sequence[AuditRecord], anchors: Sequence[Anchor], found: _Findings
) -> None:
    """Heads published earlier: each must still be in the trail, unchanged."""
    report = found.report
    last = records[-1] if records else None
    by_seq = {r.seq: r for r in records}
    for anchor in anchors:
        record = by_seq.get(anchor.seq)
        if record is None and (last is None or last.seq < anchor.seq):
            ends = f"ends at record {last.seq}" if last else "is empty"
            detail = f"the trail {ends}, before the anchored head {anchor}: it was cut back"
            report(anchor.seq, Finding.TRUNCATED, detail, override=True)
        elif record is None:
            report(anchor.seq, Finding.DELETED, f"the anchored record {anchor} is missing")
        elif not hmac.compare_digest(record.hash, anchor.hash):
            detail = f"not the anchored record {anchor}: the trail was rewritten"
            report(anchor.seq, Finding.EDITED, detail, override=True)


def _forged(record: AuditRecord, sealer: Sealer) -> bool:
    return not hmac.compare_digest(sealer.record_hash(record.entry, record.prev_hash), record.hash)
