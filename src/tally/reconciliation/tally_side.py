"""Tally's side of a reconciliation, read from the event log (ADR 0019).

The event log is the one place that holds, in both deployment modes, every transaction
Tally accepted with all the facts a report names (player, round, occurred_at, amount,
currency): the embedded log is a table of the SQLite file, the scaled one a JetStream
stream, both behind :class:`EventLog`. Settlement's stored effects hold amounts but no
player, round or time, so they could not match line by line.

A transaction is rolled back when any rollback in the log names it (a rollback's ``ref``
may name the provider's transaction of any kind), wherever the rollback falls in time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import orjson

from tally.events.codec import loads_stored, to_dict
from tally.events.model import SCHEMA_VERSION, EventKind, Source, candidates, idempotency_key
from tally.events.ports import EventLog, ProviderWindows
from tally.kernel.money import format_amount, parse_amount
from tally.reconciliation.matching import day_of, zone_of
from tally.reconciliation.model import TallyLine

LOG_PAGE = 10_000  # events read from the log per round trip
_PROVIDER = Source.PROVIDER.value
_ROLLBACK = EventKind.ROLLBACK.value
NO_END = datetime(9999, 1, 1, tzinfo=UTC)  # a window without an end ends here


def _line(provider: str, text: str, voided: set[str]) -> TallyLine | None:
    """The event's facts as a TallyLine (None: not the provider's own event), read from
    the stored JSON without building the Event: one object per transaction. A rollback
    adds the keys it may void to ``voided``."""
    d = orjson.loads(text)
    if d.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        e = loads_stored(text)  # an older shape: the strict way
        d = {**to_dict(e), "amount": format_amount(e.amount, e.currency)}
    if d["provider"] != provider or d.get("source", _PROVIDER) != _PROVIDER:
        return None
    kind, ref, currency, tx_id = d["kind"], d["ref"], d["currency"], d["provider_tx_id"]
    if kind == _ROLLBACK and ref:
        voided.update(candidates(ref))
    if ref and ref.startswith(provider + ":") and ref.count(":") >= 2:
        ref = ref[len(provider) + 1 : ref.rfind(":")]  # the provider's tx id
    at = datetime.fromisoformat(d["occurred_at"])
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return TallyLine(
        provider, idempotency_key(provider, tx_id, kind), tx_id, kind, d["operator"],
        d["player"], d["round_id"], currency,
        parse_amount(d["amount"], currency, allow_negative=True), at, ref,
    )  # fmt: skip


class LogTallySide:
    def __init__(self, log: EventLog, page: int = LOG_PAGE) -> None:
        self.log = log
        self.page = page
        # A log with an index of providers and times is read a page at a time in time
        # order; any other is scanned whole and its window sorted in memory.
        self.in_time_order = isinstance(log, ProviderWindows)

    def lines(
        self, provider: str, start: datetime, end: datetime | None, zone: str
    ) -> Iterator[TallyLine]:
        end = end or NO_END
        if isinstance(self.log, ProviderWindows):
            return self._windowed(self.log, provider, start, end)
        return self._scanned(provider, start, end, zone)

    @staticmethod
    def _windowed(
        log: ProviderWindows, provider: str, start: datetime, end: datetime
    ) -> Iterator[TallyLine]:
        """In time order (so by day in any zone) from the log's index: memory holds a
        page of the window and the keys the provider's rollbacks may void."""
        voided: set[str] = set()
        for body in log.provider_rollbacks(provider):
            _line(provider, body.decode() if isinstance(body, bytes) else body, voided)
        ignored: set[str] = set()
        for body in log.provider_window(provider, start, end):
            line = _line(provider, body.decode() if isinstance(body, bytes) else body, ignored)
            if line is not None and start <= line.occurred_at < end:
                yield _marked(line, voided)

    def _scanned(
        self, provider: str, start: datetime, end: datetime, zone: str
    ) -> Iterator[TallyLine]:
        """The whole log read, the window's lines kept and sorted by day in memory."""
        z = zone_of(zone)
        # The provider's name as dumps writes it: most other providers' events are
        # skipped without being decoded.
        needle = f'"provider":"{provider}"'
        kept: list[tuple[date, TallyLine]] = []
        voided: set[str] = set()
        after = 0
        while batch := self.log.read_stored(after, self.page):
            for position, body in batch:
                after = position
                text = body.decode() if isinstance(body, bytes) else body
                if needle not in text:
                    continue
                line = _line(provider, text, voided)
                if line is not None and start <= line.occurred_at < end:
                    kept.append((day_of(line.occurred_at, z), line))
        kept.sort(key=lambda item: item[0])
        for _, line in kept:
            yield _marked(line, voided)


def _marked(line: TallyLine, voided: set[str]) -> TallyLine:
    if line.key not in voided:
        return line
    return TallyLine(
        line.provider, line.key, line.tx_id, line.kind, line.operator, line.player,
        line.round_id, line.currency, line.amount, line.occurred_at, line.ref, True,
    )  # fmt: skip
