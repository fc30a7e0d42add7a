"""Matching a provider's report against Tally's lines. Pure and deterministic.

Both sides arrive sorted by day in the provider's zone (the stores sort; see
``ReconciliationStore.report_lines`` and ``TallySide.lines``) and are matched one day at
a time, so memory holds one day (and the tail of the day before), not the whole report.
Within a day everything is put in a canonical order first, so neither the order of the
lines nor how they were split into files changes the outcome; the file and line a report
line came from never decide anything.

Per day (the window):
1. duplicates in the report (the same tx id and kind twice): the extra lines are breaks;
2. by the provider's tx id and kind, then the pair is checked in BreakKind order;
3. the leftovers by (player, round, kind, amount, currency) within the time tolerance;
4. with round netting on, the leftovers of a round on both sides compared by their net
   (one provider line against Tally's bet, win and rollback, or the other way round);
5. what is left is missing on the other side (a rollback: a rollback mismatch), unless it
   is near the day's end, then it waits for the next day (a match there is TIMING).
Balances per (provider, operator, currency, day) are summed as lines are settled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from itertools import groupby
from zoneinfo import ZoneInfo

from tally.kernel.limits import ReconciliationLimits
from tally.reconciliation.model import (
    ROLLBACK,
    BalanceRow,
    Break,
    BreakKind,
    MatchRules,
    ReportLine,
    TallyLine,
    net,
)

Row = tuple[str, str, date]  # operator, currency, day


def zone_of(name: str) -> tzinfo:
    return ZoneInfo(name)


# (zone, UTC hour) -> the zone's UTC offset through that whole hour. Every line's day is
# read a few times per run, and a zone conversion costs twice this lookup.
_OFFSETS: dict[tuple[tzinfo, int, int, int, int], timedelta] = {}
_OFFSETS_MAX = 100_000
_HOUR = timedelta(hours=1)
_TICK = timedelta(microseconds=1)


def day_of(when: datetime, zone: tzinfo) -> date:
    """The day ``when`` falls on in the provider's zone: the report's cut-off."""
    if when.tzinfo is not UTC:
        return when.astimezone(zone).date()
    key = (zone, when.year, when.month, when.day, when.hour)
    offset = _OFFSETS.get(key)
    if offset is None:
        start = when.replace(minute=0, second=0, microsecond=0)
        first = start.astimezone(zone).utcoffset()
        last = (start + _HOUR - _TICK).astimezone(zone).utcoffset()
        if first is None or first != last:  # the zone changes its offset within this hour
            return when.astimezone(zone).date()
        if len(_OFFSETS) >= _OFFSETS_MAX:
            _OFFSETS.clear()
        _OFFSETS[key] = offset = first
    return (when + offset).date()


@dataclass(slots=True)
class _Balances:
    report: defaultdict[Row, int] = field(default_factory=lambda: defaultdict(int))
    tally: defaultdict[Row, int] = field(default_factory=lambda: defaultdict(int))
    explained: defaultdict[Row, int] = field(default_factory=lambda: defaultdict(int))
    tolerated: defaultdict[Row, int] = field(default_factory=lambda: defaultdict(int))
    breaks: defaultdict[Row, set[str]] = field(default_factory=lambda: defaultdict(set))


@dataclass(frozen=True, slots=True)
class MatchResult:
    rules: MatchRules
    breaks: tuple[Break, ...]
    balances: tuple[BalanceRow, ...]
    report_lines: int
    tally_lines: int
    matched: int  # report lines matched without a break


R = tuple[date, ReportLine]
T = tuple[date, TallyLine]


def _r_order(item: R) -> tuple[str, str, int, datetime, str, str, str, str, str, date]:
    d, r = item
    return (
        r.tx_id, r.kind, r.amount, r.occurred_at, r.operator, r.player, r.round_id,
        r.currency, r.ref, d,
    )  # fmt: skip


def _id_order(item: R) -> tuple[str, str]:
    return item[1].tx_id, item[1].kind


def _t_order(item: T) -> str:
    return item[1].key


class _Matcher:
    def __init__(self, rules: MatchRules, limits: ReconciliationLimits) -> None:
        self.rules = rules
        self.zone = zone_of(rules.zone)
        self.carry = timedelta(seconds=max(limits.cutoff_carry_s, rules.time_tolerance_s))
        self.tolerance = timedelta(seconds=rules.time_tolerance_s)
        self.breaks: list[Break] = []
        self.bal = _Balances()
        self.report_lines = 0
        self.tally_lines = 0
        self.matched = 0
        self.voided: frozenset[str] = frozenset()

    # -- nets and balances -------------------------------------------------------------

    def rnet(self, r: ReportLine) -> int:
        return 0 if r.tx_id in self.voided else net(r.kind, r.amount)

    @staticmethod
    def tnet(t: TallyLine) -> int:
        return 0 if t.rolled_back else net(t.kind, t.amount)

    def _settle(self, reps: list[R], tals: list[T], kind: BreakKind | None) -> None:
        """Lines settled (matched or broken): into the balances, and into the break."""
        rsum = tsum = 0
        for d, r in reps:
            n = self.rnet(r)
            rsum += n
            self.bal.report[(r.operator, r.currency, d)] += n
        for d, t in tals:
            n = self.tnet(t)
            tsum += n
            self.bal.tally[(t.operator, t.currency, d)] += n
        if kind is None:
            self.matched += len(reps)
            for d, r in reps:
                self.bal.tolerated[(r.operator, r.currency, d)] += self.rnet(r)
            for d, t in tals:
                self.bal.tolerated[(t.operator, t.currency, d)] -= self.tnet(t)
            return
        first = reps[0] if reps else tals[0]
        brk = Break(
            kind=kind,
            provider=self.rules.provider,
            operator=first[1].operator,
            currency=first[1].currency,
            day=first[0],
            report_ref=",".join(sorted(r.identity for _, r in reps)),
            tally_key=",".join(sorted(t.key for _, t in tals)),
            report_amount=rsum,
            tally_amount=tsum,
            tally_day=min((d for d, _ in tals), default=None),
            source=min((f"{r.source}:{r.line}" for _, r in reps), default=""),
            line=reps[0][1] if kind is BreakKind.MISSING_IN_TALLY and len(reps) == 1 else None,
        )
        self.breaks.append(brk)
        for d, r in reps:
            row = (r.operator, r.currency, d)
            self.bal.explained[row] += self.rnet(r)
            self.bal.breaks[row].add(brk.id)
        for d, t in tals:
            row = (t.operator, t.currency, d)
            self.bal.explained[row] -= self.tnet(t)
            self.bal.breaks[row].add(brk.id)

    def _matched(self, rd: date, r: ReportLine, tally: T) -> None:
        """``_settle([(rd, r)], [tally], None)`` for the usual pair, one line a side."""
        td, t = tally
        rn = 0 if r.tx_id in self.voided else net(r.kind, r.amount)
        tn = 0 if t.rolled_back else net(t.kind, t.amount)
        bal = self.bal
        row = (r.operator, r.currency, rd)
        bal.report[row] += rn
        bal.tolerated[row] += rn
        row = (t.operator, t.currency, td)
        bal.tally[row] += tn
        bal.tolerated[row] -= tn
        self.matched += 1

    # -- one window --------------------------------------------------------------------

    def window(self, reps: list[R], tals: list[T], end: datetime | None) -> tuple[list[R], list[T]]:
        """Match one day's lines (with the day before's carried tail); returns the tail
        that waits for the next day (nothing when ``end`` is None: the last day)."""
        # Canonical order: by (tx id, kind), then (only where a transaction is there more
        # than once) by everything else (as one sort by _r_order, at a fraction of it).
        reps.sort(key=_id_order)
        self.voided = frozenset(r.ref for _, r in reps if r.kind == ROLLBACK and r.ref)
        # 1. duplicates: the first in canonical order stands for the transaction.
        firsts: list[R] = []
        for _, group in groupby(reps, key=_id_order):
            first, *extra = group
            if extra:
                first, *extra = sorted([first, *extra], key=_r_order)
            firsts.append(first)
            for dup in extra:
                self._settle([dup], [], BreakKind.DUPLICATE_IN_REPORT)
        tail = None if end is None else end - self.carry
        # 2. by transaction id.
        left_r, left_t, carry_r, carry_t = self._by_id(firsts, tals, tail)
        # 3. by (player, round, kind, amount, currency) within the time tolerance.
        left_r, left_t = self._by_facts(left_r, left_t)
        # 4. rounds by their net.
        if self.rules.round_netting:
            left_r, left_t = self._by_round(left_r, left_t)
        # 5. missing, or wait for the next day.
        for item in left_r:
            if tail is not None and item[1].occurred_at >= tail:
                carry_r.append(item)
            else:
                kind = BreakKind.ROLLBACK_MISMATCH if item[1].kind == ROLLBACK else None
                self._settle([item], [], kind or BreakKind.MISSING_IN_TALLY)
        for titem in left_t:
            if tail is not None and titem[1].occurred_at >= tail:
                carry_t.append(titem)
            else:
                kind = BreakKind.ROLLBACK_MISMATCH if titem[1].kind == ROLLBACK else None
                self._settle([], [titem], kind or BreakKind.MISSING_IN_REPORT)
        return carry_r, carry_t

    def _by_id(
        self, firsts: list[R], tals: list[T], tail: datetime | None
    ) -> tuple[list[R], list[T], list[R], list[T]]:
        """Pairs by tx id and kind: (report leftovers, Tally's, and the pairs that wait
        for the next day). A pair Tally rolled back that the report has not (yet) voided
        waits if it is in the day's tail: the report's rollback may come after midnight."""
        by_id = {(t.tx_id, t.kind): (d, t) for d, t in tals}
        left_r: list[R] = []
        carry_r: list[R] = []
        carry_t: list[T] = []
        for rd, r in firsts:
            found = by_id.pop((r.tx_id, r.kind), None)
            if found is None:
                left_r.append((rd, r))
                continue
            kind = self._pair_kind(rd, r, found)
            if kind is None:
                self._matched(rd, r, found)
                continue
            if (
                kind is BreakKind.ROLLBACK_MISMATCH and tail is not None
                and found[1].rolled_back and r.occurred_at >= tail
            ):  # fmt: skip
                carry_r.append((rd, r))
                carry_t.append(found)
                continue
            self._settle([(rd, r)], [found], kind)
        return left_r, sorted(by_id.values(), key=_t_order), carry_r, carry_t

    def _pair_kind(self, rd: date, r: ReportLine, tally: T) -> BreakKind | None:
        td, t = tally
        if r.currency != t.currency:
            return BreakKind.CURRENCY_MISMATCH
        if (r.tx_id in self.voided) != t.rolled_back:
            return BreakKind.ROLLBACK_MISMATCH
        gap = abs(r.amount - t.amount)
        if gap > self.rules.amount_tolerance:
            if gap <= self.rules.fx_rounding:
                return BreakKind.FX_ROUNDING
            return BreakKind.AMOUNT_MISMATCH
        if rd != td:
            return BreakKind.TIMING
        return None

    def _by_facts(self, reps: list[R], tals: list[T]) -> tuple[list[R], list[T]]:
        if not reps or not tals:
            return reps, tals
        pool: dict[tuple[str, str, str, int, str], list[T]] = defaultdict(list)
        for item in tals:
            t = item[1]
            pool[(t.player, t.round_id, t.kind, t.amount, t.currency)].append(item)
        used: set[str] = set()
        left: list[R] = []
        for rd, r in reps:
            options = pool.get((r.player, r.round_id, r.kind, r.amount, r.currency), ())
            best: T | None = None
            best_key: tuple[timedelta, str] | None = None
            for item in options:
                t = item[1]
                if t.key in used:
                    continue
                gap = abs(r.occurred_at - t.occurred_at)
                if gap > self.tolerance:
                    continue
                if best_key is None or (gap, t.key) < best_key:
                    best, best_key = item, (gap, t.key)
            if best is None:
                left.append((rd, r))
                continue
            used.add(best[1].key)
            kind = BreakKind.TIMING if rd != best[0] else None
            self._settle([(rd, r)], [best], kind)
        return left, [item for item in tals if item[1].key not in used]

    def _by_round(self, reps: list[R], tals: list[T]) -> tuple[list[R], list[T]]:
        if not reps or not tals:
            return reps, tals
        rounds_r: dict[tuple[str, str, str, str], list[R]] = defaultdict(list)
        rounds_t: dict[tuple[str, str, str, str], list[T]] = defaultdict(list)
        for item in reps:
            r = item[1]
            if r.round_id:
                rounds_r[(r.operator, r.player, r.round_id, r.currency)].append(item)
        for titem in tals:
            t = titem[1]
            if t.round_id:
                rounds_t[(t.operator, t.player, t.round_id, t.currency)].append(titem)
        done_r: set[int] = set()
        done_t: set[int] = set()
        for key in sorted(rounds_r.keys() & rounds_t.keys()):
            rs, ts = rounds_r[key], rounds_t[key]
            gap = abs(sum(self.rnet(r) for _, r in rs) - sum(self.tnet(t) for _, t in ts))
            if gap > self.rules.amount_tolerance:
                kind: BreakKind | None = BreakKind.AMOUNT_MISMATCH
            elif {d for d, _ in rs} != {d for d, _ in ts}:
                kind = BreakKind.TIMING
            else:
                kind = None
            self._settle(rs, ts, kind)
            done_r.update(id(item) for item in rs)
            done_t.update(id(item) for item in ts)
        return (
            [item for item in reps if id(item) not in done_r],
            [item for item in tals if id(item) not in done_t],
        )

    def result(self) -> MatchResult:
        b = self.bal
        rows = sorted(
            b.report.keys() | b.tally.keys() | b.explained.keys(), key=lambda k: (k[2], k[0], k[1])
        )
        balances = tuple(
            BalanceRow(
                provider=self.rules.provider,
                operator=op,
                currency=cur,
                day=d,
                report_total=b.report.get((op, cur, d), 0),
                tally_total=b.tally.get((op, cur, d), 0),
                explained=b.explained.get((op, cur, d), 0),
                tolerated=b.tolerated.get((op, cur, d), 0),
                breaks=tuple(sorted(b.breaks.get((op, cur, d), ()))),
            )
            for op, cur, d in rows
        )
        return MatchResult(
            self.rules,
            tuple(sorted(self.breaks, key=Break.sort_key)),
            balances,
            self.report_lines,
            self.tally_lines,
            self.matched,
        )


class _Days:
    """A side's (day, line) pairs a day at a time, with only the next day's first line
    read ahead: memory holds the day being matched, not the next one too."""

    def __init__(self, items: Iterable[tuple[date, ReportLine | TallyLine]]) -> None:
        self._items = iter(items)
        self._head: tuple[date, ReportLine | TallyLine] | None = next(self._items, None)

    @property
    def day(self) -> date | None:
        return None if self._head is None else self._head[0]

    def take(self) -> list:  # type: ignore[type-arg]
        """The lines of the next day (``day``), as (day, line) pairs."""
        assert self._head is not None
        day = self._head[0]
        out = [self._head]
        self._head = None
        for item in self._items:
            if item[0] != day:
                assert item[0] > day, f"lines must come sorted by day: {item[0]} after {day}"
                self._head = item
                break
            out.append(item)
        return out


class NotInDayOrder(Exception):
    """A report line came after lines of a later day, by more than the slack allows."""


class InDayOrder:
    """A report's (day, line) pairs as they are read, passed on by day while the report
    keeps to day order, so that it is matched without being stored and sorted first.

    A line may come up to ``slack`` after a later line (a round's win after the next
    round's bet); so a day is passed on once a line ``slack`` past its start has been read
    (or the report's end), and then each of its lines as it comes, until the next day
    opens the same way. A line of a day before the one being passed on raises
    :class:`NotInDayOrder` (the report is then sorted another way). Memory holds the
    lines of the slack, not the report.
    """

    def __init__(self, items: Iterator[R], zone: tzinfo, slack: timedelta) -> None:
        self._items = items
        self._zone = zone
        self._slack = slack
        self._ahead: dict[date, list[R]] = {}  # read, not passed on yet, by day
        self._latest: datetime | None = None  # the latest time read
        self._opens: dict[date, datetime] = {}  # a day's start plus the slack (UTC)
        self.day: date | None = None  # the day being passed on
        self.first: date | None = None  # the report's first day
        self.last: date | None = None  # the latest day read
        self.done = False  # the report is read to its end

    def _read(self) -> None:
        item = next(self._items, None)
        if item is None:
            self.done = True
            return
        day, line = item
        if self.day is not None and day < self.day:
            raise NotInDayOrder(f"{line.source} line {line.line}: {day} after {self.day}")
        if self.last is None or day > self.last:
            self.last = day
        if self._latest is None or line.occurred_at > self._latest:
            self._latest = line.occurred_at
        self._ahead.setdefault(day, []).append(item)

    def _open_next(self) -> bool:
        """Open the next day read if no line of an earlier one may come any more."""
        if not self._ahead:
            return False
        day = min(self._ahead)
        if not self.done:
            opens = self._opens.get(day)
            if opens is None:
                start = datetime(day.year, day.month, day.day, tzinfo=self._zone)
                opens = self._opens[day] = start.astimezone(UTC) + self._slack
            if self._latest is None or self._latest < opens:
                return False
        self.day = day
        if self.first is None:
            self.first = day
        return True

    def lines(self) -> Iterator[R]:
        """The pairs, sorted by day (in the order read within a day)."""
        while True:
            batch = None if self.day is None else self._ahead.pop(self.day, None)
            if batch:
                yield from batch
            elif not self._open_next():
                if self.done:
                    return
                self._read()

    def start(self) -> date | None:
        """The report's first day (None: no lines), read as far as needed."""
        while self.first is None and not self._open_next() and not self.done:
            self._read()
        return self.first

    def reaches(self, day: date) -> bool:
        """Whether the report has lines on ``day`` or after, read as far as needed."""
        while (self.last is None or self.last < day) and not self.done:
            self._read()
        return self.last is not None and self.last >= day


def match(
    report: Iterable[ReportLine],
    tally: Iterable[TallyLine],
    rules: MatchRules,
    limits: ReconciliationLimits | None = None,
) -> MatchResult:
    """Match ``report`` against ``tally`` under ``rules``. Both sorted by day in the
    rules' zone (any order within a day); the result depends on nothing else."""
    zone = zone_of(rules.zone)
    return match_days(
        ((day_of(r.occurred_at, zone), r) for r in report),
        ((day_of(t.occurred_at, zone), t) for t in tally),
        rules,
        limits,
    )


def match_days(
    report: Iterable[R],
    tally: Iterable[T],
    rules: MatchRules,
    limits: ReconciliationLimits | None = None,
) -> MatchResult:
    """:func:`match` of lines that come with their day in the rules' zone already."""
    m = _Matcher(rules, limits or ReconciliationLimits())
    rdays = _Days(report)
    tdays = _Days(tally)
    carry_r: list[R] = []
    carry_t: list[T] = []
    while rdays.day is not None or tdays.day is not None:
        day = min(d for d in (rdays.day, tdays.day) if d is not None)
        reps: list[R] = carry_r
        tals: list[T] = carry_t
        if rdays.day == day:
            carried = len(reps)
            reps.extend(rdays.take())
            m.report_lines += len(reps) - carried
        if tdays.day == day:
            carried = len(tals)
            tals.extend(tdays.take())
            m.tally_lines += len(tals) - carried
        following = day + timedelta(days=1)
        nxt = [d for d in (rdays.day, tdays.day) if d is not None]
        # The tail waits only if the next day has lines to match it against.
        end = None
        if nxt and min(nxt) == following:
            end = datetime(following.year, following.month, following.day, tzinfo=m.zone)
        carry_r, carry_t = m.window(reps, tals, end)
    return m.result()
