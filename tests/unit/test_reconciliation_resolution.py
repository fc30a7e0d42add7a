"""Automatic resolution rules, decided by hand-written scenario tables (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from tally.reconciliation.model import Break, BreakKind, BreakStatus, Transition, check_reopen
from tally.reconciliation.resolution import is_timing_pair

D2, D3, D5 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 5)
# The report's line of the 2nd, at 23:59:50 in the provider's zone, that Tally has no line
# for in that run; Tally's line (recorded just after midnight) unmatched in the next run.
REPORT_SIDE = Break(BreakKind.MISSING_IN_TALLY, "softswiss", "op1", "EUR", D2, "a3:bet", "", 500, 0)
TALLY_SIDE = Break(
    BreakKind.MISSING_IN_REPORT, "softswiss", "op1", "EUR", D3, "", "softswiss:a3:bet", 0, 500,
    tally_day=D3,
)  # fmt: skip

CASES = [
    ("the report's line, then Tally's the next day", REPORT_SIDE, TALLY_SIDE, True),
    ("Tally's line, then the report's the next day", replace(TALLY_SIDE, day=D2, tally_day=D2),
     replace(REPORT_SIDE, day=D3), True),
    ("the same day (a rerun of the same report's day)", REPORT_SIDE,
     replace(TALLY_SIDE, day=D2, tally_day=D2), True),
    ("days three apart are not a cut-off", REPORT_SIDE,
     replace(TALLY_SIDE, day=D5, tally_day=D5), False),
    ("another transaction", REPORT_SIDE, replace(TALLY_SIDE, tally_key="softswiss:a4:bet"), False),
    ("another kind of the same id", REPORT_SIDE,
     replace(TALLY_SIDE, tally_key="softswiss:a3:win"), False),
    ("another amount", REPORT_SIDE, replace(TALLY_SIDE, tally_amount=499), False),
    ("another operator", REPORT_SIDE, replace(TALLY_SIDE, operator="op2"), False),
    ("another currency", REPORT_SIDE, replace(TALLY_SIDE, currency="USD"), False),
    ("another provider's key", REPORT_SIDE,
     replace(TALLY_SIDE, provider="hub88", tally_key="hub88:a3:bet"), False),
    ("both missing on the same side", REPORT_SIDE, replace(REPORT_SIDE, day=D3), False),
    ("an amount mismatch is no timing", REPORT_SIDE,
     replace(TALLY_SIDE, kind=BreakKind.AMOUNT_MISMATCH), False),
    ("a round's several lines are not one transaction",
     replace(REPORT_SIDE, report_ref="a3:bet,a5:win"), TALLY_SIDE, False),
]  # fmt: skip


@pytest.mark.parametrize(("why", "earlier", "later", "pair"), CASES, ids=[c[0] for c in CASES])
def test_a_later_runs_break_closes_an_earlier_one_only_as_its_other_half(
    why: str, earlier: Break, later: Break, pair: bool
) -> None:
    assert is_timing_pair(earlier, later) is pair


REOPEN = [
    (BreakStatus.RESOLVED, "rule was wrong", Transition.OK),
    (BreakStatus.WRITTEN_OFF, "provider paid after all", Transition.OK),
    (BreakStatus.RESOLVED, "  ", Transition.NOTE_REQUIRED),
    (BreakStatus.OPEN, "why", Transition.NOT_ALLOWED),
    (BreakStatus.INVESTIGATING, "why", Transition.NOT_ALLOWED),
]


@pytest.mark.parametrize(("status", "note", "verdict"), REOPEN)
def test_only_a_closed_break_reopens_and_only_with_a_note(
    status: BreakStatus, note: str, verdict: Transition
) -> None:
    assert check_reopen(status, note) is verdict
