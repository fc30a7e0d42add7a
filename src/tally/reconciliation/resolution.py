"""Automatic resolution rules: which breaks close themselves, and how. Pure.

Each rule only decides; the service carries the decision out with its audit record in
the same transaction, under a ``rule:`` actor, and every one can be undone by reopening
the break (audited too).
"""

from __future__ import annotations

from datetime import date

from tally.reconciliation.model import Break, BreakKind, BreakStatus

TIMING_ACTOR = "rule:reconciliation.timing"
# A missing line and its counterpart found by a later run are a timing difference when
# their days are at most this far apart (a line on either side of the report's cut-off).
TIMING_MAX_DAYS = 1

_MISSING = frozenset({BreakKind.MISSING_IN_TALLY, BreakKind.MISSING_IN_REPORT})
UNRESOLVED = frozenset({BreakStatus.OPEN, BreakStatus.INVESTIGATING})


def opposite(kind: BreakKind) -> BreakKind | None:
    """The kind of break a later run finds for the other half of a missing line."""
    if kind is BreakKind.MISSING_IN_TALLY:
        return BreakKind.MISSING_IN_REPORT
    if kind is BreakKind.MISSING_IN_REPORT:
        return BreakKind.MISSING_IN_TALLY
    return None


def transaction_of(b: Break) -> str | None:
    """The one transaction (``tx_id:kind``) a missing-line break names, else None."""
    if b.kind is BreakKind.MISSING_IN_TALLY and b.report_ref and "," not in b.report_ref:
        return b.report_ref
    prefix = f"{b.provider}:"
    if (
        b.kind is BreakKind.MISSING_IN_REPORT
        and b.tally_key.startswith(prefix)
        and "," not in b.tally_key
    ):
        return b.tally_key.removeprefix(prefix)
    return None


def _day(b: Break) -> date:
    return b.tally_day or b.day if b.kind is BreakKind.MISSING_IN_REPORT else b.day


def is_timing_pair(earlier: Break, later: Break) -> bool:
    """Whether ``later`` (a later run's break) is the other half of ``earlier``: the same
    transaction missing on opposite sides, same provider, operator, currency and amount,
    on days at most TIMING_MAX_DAYS apart. Then the line was only on the other side of a
    report's cut-off, and both breaks close as a timing difference."""
    if earlier.kind not in _MISSING or opposite(earlier.kind) is not later.kind:
        return False
    if (earlier.provider, earlier.operator, earlier.currency) != (
        later.provider,
        later.operator,
        later.currency,
    ):
        return False
    ident = transaction_of(earlier)
    if ident is None or ident != transaction_of(later):
        return False
    report, tally = (
        (earlier, later) if earlier.kind is BreakKind.MISSING_IN_TALLY else (later, earlier)
    )
    if report.report_amount != tally.tally_amount:
        return False
    return abs((_day(tally) - _day(report)).days) <= TIMING_MAX_DAYS
