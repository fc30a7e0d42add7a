"""The provider-side view of a seeded world: each provider's own report, with labelled breaks.

From the same plays the simulation turns into events, this writes what each provider
would send for reconciliation: its report in its built-in layout
(``tally.reconciliation.layouts``), as CSV or JSON Lines, its times on its own wall clock
(no offset), its kind words. Then it injects breaks, each one labelled with what was
done and to which line, so a test can check that reconciliation finds every one and
nothing else:

- a dropped callback: the line is in the report, not in Tally's event log;
- a line the provider left out of its report;
- an amount or a currency changed in the report;
- a line the report gives twice;
- a line across midnight: the report puts it just before a midnight of the provider's
  zone, Tally just after (or the other way round);
- a rollback one side missed (Tally's log or the report lacks it);
- FX rounding: the report's amount off by a few minor units.

Pure and deterministic: every choice comes from the ``random.Random`` it is given. At most
one fault touches a round, and only rounds whose lines all fall strictly inside the
report's first and last day (in the provider's zone): the report's edge days are where
reconciliation's own known limits lie (docs/concepts/reconciliation.md).
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo

from tally.events.model import Event
from tally.kernel.money import format_amount
from tally.reconciliation.layouts import BUILT_IN, ReportLayout
from tally.reconciliation.model import ROLLBACK, MatchRules
from tally.simulation.activity import Play
from tally.simulation.direct import SIMULATION_RECORDED_AT, to_events
from tally.simulation.world import EUR_RATES, World

# The providers' report zones, handed out in turn from a seeded start. Zones without
# daylight saving: a wall-clock time without an offset is ambiguous in a fall-back hour,
# which is the provider's problem to solve, not the simulation's to invent.
REPORT_ZONES = ("Asia/Tokyo", "America/Sao_Paulo", "Asia/Kolkata", "UTC")
MIDNIGHT_GAP_S = 59  # at most this far either side of midnight for a line across it


class Fault(StrEnum):
    """What was done to a line, and so the break reconciliation should name."""

    DROPPED_CALLBACK = "dropped_callback"  # missing_in_tally
    LEFT_OUT = "left_out"  # missing_in_report
    AMOUNT = "amount"  # amount_mismatch
    CURRENCY = "currency"  # currency_mismatch
    DUPLICATE = "duplicate"  # duplicate_in_report
    MIDNIGHT = "midnight"  # timing
    FX_ROUNDING = "fx_rounding"  # fx_rounding
    ROLLBACK_MISSED_BY_TALLY = "rollback_missed_by_tally"  # rollback_mismatch (two)
    ROLLBACK_MISSED_BY_REPORT = "rollback_missed_by_report"  # rollback_mismatch (two)


ROLLBACK_FAULTS = (Fault.ROLLBACK_MISSED_BY_TALLY, Fault.ROLLBACK_MISSED_BY_REPORT)
LINE_FAULTS = tuple(f for f in Fault if f not in ROLLBACK_FAULTS)


@dataclass(frozen=True, slots=True)
class ReportFaults:
    """The fault knobs of the provider-side view. Every one off (0) by default."""

    # Share of rounds without a rollback given one line fault, drawn from ``mix``.
    share: float = 0.0
    # Share of rounds with a rollback whose rollback one side misses.
    rollback_share: float = 0.0
    # Relative weights of the line faults (a fault not named: weight 0).
    mix: Mapping[Fault, float] = field(
        default_factory=lambda: MappingProxyType(dict.fromkeys(LINE_FAULTS, 1.0))
    )
    # Minor units the provider's FX conversion may be off by (the rules' fx_rounding);
    # an amount fault is always further off than this.
    fx_rounding: int = 2

    @classmethod
    def all_on(cls) -> ReportFaults:
        return cls(share=0.02, rollback_share=0.3)


@dataclass(frozen=True, slots=True)
class Label:
    """One injected fault: what was done, to which provider's line (tx id and kind);
    for a missed rollback, also the line it voids."""

    fault: Fault
    provider: str
    tx_id: str
    kind: str
    original_tx_id: str = ""
    original_kind: str = ""


@dataclass(frozen=True, slots=True)
class ReportFile:
    provider: str
    protocol: str  # whose built-in layout it is written in
    name: str  # ends .csv or .jsonl
    zone: str
    data: bytes


@dataclass(slots=True)
class ProviderView:
    events: list[Event]  # what reached Tally's event log
    reports: list[ReportFile]
    labels: list[Label]
    rules: dict[str, MatchRules]  # per provider: its zone, the fx rounding allowed
    layouts: dict[str, ReportLayout]  # per provider: its protocol's built-in layout


@dataclass(slots=True)
class _Sides:
    """One provider's lines on each side while faults are injected."""

    tally: list[Play] = field(default_factory=list)
    report: list[Play] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)


def provider_view(
    world: World, plays: Iterable[Play], faults: ReportFaults, rng: random.Random
) -> ProviderView:
    """Tally's events and every provider's report of ``plays``, with ``faults`` injected."""
    by_provider: dict[str, list[Play]] = {p.id: [] for p in world.providers}
    for play in plays:
        by_provider[play.provider].append(play)
    view = ProviderView([], [], [], {}, {})
    start = rng.randrange(len(REPORT_ZONES))
    for i, provider in enumerate(world.providers):
        zone = REPORT_ZONES[(start + i) % len(REPORT_ZONES)]
        sides = _inject(by_provider[provider.id], ZoneInfo(zone), faults, rng)
        layout = BUILT_IN[provider.protocol]
        suffix = ("csv", "jsonl")[(start + i) % 2]
        name = f"{provider.id}-{provider.protocol}.{suffix}"
        view.reports.append(
            ReportFile(
                provider.id, provider.protocol, name, zone,
                _render(sides.report, layout, ZoneInfo(zone), suffix, rng),
            )
        )  # fmt: skip
        view.events += _events(sides.tally)
        view.labels += sides.labels
        view.rules[provider.id] = MatchRules(
            provider.id, version=1, amount_tolerance=0, time_tolerance_s=60, zone=zone,
            fx_rounding=faults.fx_rounding,
        )  # fmt: skip
        view.layouts[provider.id] = layout
    view.events.sort(key=lambda e: e.occurred_at)
    return view


def _events(plays: Sequence[Play]) -> list[Event]:
    """The plays as Tally's events. A rollback carries the amount it voids, as a
    provider's rollback line does (``tally import`` keeps it so)."""
    events = to_events(plays, SIMULATION_RECORDED_AT)
    return [
        replace(e, amount=p.amount) if p.kind == ROLLBACK else e
        for e, p in zip(events, plays, strict=True)
    ]


# -- injecting faults ------------------------------------------------------------------


def _inject(plays: list[Play], zone: ZoneInfo, faults: ReportFaults, rng: random.Random) -> _Sides:
    sides = _Sides()
    if not plays:
        return sides
    days = [p.occurred_at.astimezone(zone).date() for p in plays]
    first, last = min(days), max(days)
    rounds: dict[str, list[Play]] = {}
    inner: dict[str, bool] = {}
    for play, day in zip(plays, days, strict=True):
        rounds.setdefault(play.round_id, []).append(play)
        inner[play.round_id] = inner.get(play.round_id, True) and first < day < last
    kinds = [f for f in LINE_FAULTS if faults.mix.get(f, 0) > 0]
    weights = [faults.mix[f] for f in kinds]
    for round_id, lines in rounds.items():
        fault: Fault | None = None
        draw = rng.random()
        rollback = next((p for p in lines if p.kind == ROLLBACK), None)
        if not inner[round_id]:
            pass
        elif rollback is not None:
            if draw < faults.rollback_share and _same_day(lines, rollback, zone):
                fault = rng.choice(ROLLBACK_FAULTS)
        elif draw < faults.share and kinds:
            fault = rng.choices(kinds, weights)[0]
        if fault is None:
            sides.tally += lines
            sides.report += lines
        elif rollback is not None:
            _miss_rollback(sides, fault, lines, rollback)
        else:
            _line_fault(sides, fault, lines, zone, faults.fx_rounding, rng)
    return sides


def _same_day(lines: list[Play], rollback: Play, zone: ZoneInfo) -> bool:
    """Whether the rollback falls on its original's day in the provider's zone. A
    report's rollback voids its original only within one day window (a known limit of
    reconciliation): across midnight only the lone rollback line would be found."""
    original = next(p for p in lines if p.tx_id == rollback.ref)
    return (
        original.occurred_at.astimezone(zone).date() == rollback.occurred_at.astimezone(zone).date()
    )


def _miss_rollback(sides: _Sides, fault: Fault, lines: list[Play], rollback: Play) -> None:
    original = next(p for p in lines if p.tx_id == rollback.ref)
    kept = [p for p in lines if p is not rollback]
    sides.tally += kept if fault is Fault.ROLLBACK_MISSED_BY_TALLY else lines
    sides.report += kept if fault is Fault.ROLLBACK_MISSED_BY_REPORT else lines
    sides.labels.append(
        Label(fault, rollback.provider, rollback.tx_id, ROLLBACK, original.tx_id, original.kind)
    )


def _line_fault(
    sides: _Sides, fault: Fault, lines: list[Play], zone: ZoneInfo, fx: int, rng: random.Random
) -> None:
    target = rng.choice(lines)
    others = [p for p in lines if p is not target]
    tally: list[Play] = [target]
    report: list[Play] = [target]
    if fault is Fault.DROPPED_CALLBACK:
        tally = []
    elif fault is Fault.LEFT_OUT:
        report = []
    elif fault is Fault.DUPLICATE:
        report = [target, target]
    elif fault is Fault.AMOUNT:
        report = [replace(target, amount=_off_by(target.amount, fx + 1, target.amount, rng))]
    elif fault is Fault.FX_ROUNDING:
        report = [replace(target, amount=_off_by(target.amount, 1, fx, rng))]
    elif fault is Fault.CURRENCY:
        other = rng.choice(sorted(c for c in EUR_RATES if c != target.currency))
        report = [replace(target, currency=other)]
    elif fault is Fault.MIDNIGHT:
        midnight = _nearest_midnight(target.occurred_at, zone)
        before = midnight - timedelta(seconds=rng.randint(1, MIDNIGHT_GAP_S))
        after = midnight + timedelta(seconds=rng.randint(0, MIDNIGHT_GAP_S))
        early, late = (before, after) if rng.random() < 0.5 else (after, before)
        report = [replace(target, occurred_at=early)]
        tally = [replace(target, occurred_at=late)]
    sides.tally += others + tally
    sides.report += others + report
    sides.labels.append(Label(fault, target.provider, target.tx_id, target.kind))


def _off_by(amount: int, least: int, most: int, rng: random.Random) -> int:
    """``amount`` moved by ``least`` to ``most`` minor units, up or down, never below 1."""
    gap = rng.randint(least, max(least, most))
    return amount - gap if amount - gap >= 1 and rng.random() < 0.5 else amount + gap


def _nearest_midnight(at: datetime, zone: ZoneInfo) -> datetime:
    day = at.astimezone(zone).date()
    starts = [datetime.combine(d, time(), zone) for d in (day, day + timedelta(days=1))]
    return min(starts, key=lambda m: abs(m - at))


# -- writing the report ----------------------------------------------------------------


def _words(layout: ReportLayout) -> dict[str, list[str]]:
    """Tally's kind -> the provider's words for it (several: one is picked per line)."""
    words: dict[str, list[str]] = {}
    for word, kind in sorted(layout.kinds.items()):
        words.setdefault(kind, []).append(word)
    return words


def _render(
    lines: list[Play], layout: ReportLayout, zone: ZoneInfo, suffix: str, rng: random.Random
) -> bytes:
    """The report in the provider's layout: its column names and kind words, its wall
    clock, in the order it happened; a duplicated line lands anywhere in the file."""
    column = {name: col for col, name in layout.columns.items()}
    extra = sorted(layout.ignored)[:1]  # a column the provider sends and Tally ignores
    header = [column[n] for n in layout.columns.values()] + extra
    words = _words(layout)
    order = sorted(range(len(lines)), key=lambda i: lines[i].occurred_at)
    seen: set[tuple[str, str]] = set()
    rows: list[dict[str, str]] = []
    for i in order:
        p = lines[i]
        row = {
            column["tx_id"]: p.tx_id,
            column["kind"]: rng.choice(words.get(p.kind, [p.kind])),
            column["operator"]: p.operator,
            column["player"]: p.player,
            column["round_id"]: p.round_id,
            column["currency"]: p.currency,
            column["amount"]: format_amount(p.amount, p.currency),
            column["occurred_at"]: p.occurred_at.astimezone(zone).replace(tzinfo=None).isoformat(),
            column["ref"]: p.ref,
        }
        for name in extra:
            row[name] = p.game
        if (p.tx_id, p.kind) in seen:
            rows.insert(rng.randrange(len(rows) + 1), row)
        else:
            rows.append(row)
        seen.add((p.tx_id, p.kind))
    if suffix == "jsonl":
        return "".join(
            json.dumps({k: v for k, v in r.items() if v}, separators=(",", ":")) + "\n"
            for r in rows
        ).encode()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()
