"""Automatic resolution rules, decided by hand-written scenario tables (pure)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from tally.events.model import Event, Source
from tally.ledger.model import OwnerKind
from tally.reconciliation.model import (
    Break,
    BreakKind,
    BreakStatus,
    MatchRules,
    ReportLine,
    Transition,
    check_reopen,
)
from tally.reconciliation.resolution import (
    FX_CODE,
    fx_adjustment,
    fx_reversal,
    is_timing_pair,
    redrive_event,
)

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


# -- rule (b): FX rounding within tolerance -------------------------------------------------

FX_RULES = MatchRules("softswiss", version=2, amount_tolerance=0, fx_rounding=3)
CLEARING = "provider:softswiss:recon_clearing:EUR"
ROUNDING = "platform:fx_rounding:EUR"
# A win the provider reports as 4.01 that Tally recorded as 4.00: GGR -401 against -400.
FX = Break(
    BreakKind.FX_ROUNDING, "softswiss", "op1", "EUR", D2, "a2:win", "softswiss:a2:win", -401,
    -400, tally_day=D2,
)  # fmt: skip

# (why, break, rules, expected: None or (debit, credit, amount))
FX_CASES = [
    ("the report a minor unit below Tally: clearing gives it back", FX, FX_RULES,
     (CLEARING, ROUNDING, 1)),
    ("the report above Tally: the platform pays the rounding", replace(FX, report_amount=-397),
     FX_RULES, (ROUNDING, CLEARING, 3)),
    ("exactly at the tolerance", replace(FX, report_amount=-403), FX_RULES,
     (CLEARING, ROUNDING, 3)),
    ("past the tolerance (the rules were tightened): a person looks",
     replace(FX, report_amount=-404), FX_RULES, None),
    ("no FX rounding expected by the rules", FX, replace(FX_RULES, fx_rounding=0), None),
    ("an amount mismatch is no rounding", replace(FX, kind=BreakKind.AMOUNT_MISMATCH),
     FX_RULES, None),
    ("another provider's rules", FX, replace(FX_RULES, provider="hub88"), None),
    ("nothing to move", replace(FX, report_amount=-400), FX_RULES, None),
]  # fmt: skip


@pytest.mark.parametrize(("why", "brk", "rules", "want"), FX_CASES, ids=[c[0] for c in FX_CASES])
def test_an_fx_rounding_break_within_tolerance_is_adjusted_by_one_transfer(
    why: str, brk: Break, rules: MatchRules, want: tuple[str, str, int] | None
) -> None:
    got = fx_adjustment(7, brk, rules)
    if want is None:
        assert got is None
        return
    assert got is not None
    r = got.request
    assert (r.debit_account_id, r.credit_account_id, r.amount) == want
    assert (r.id, r.currency, r.code) == ("recon:fx:7", "EUR", FX_CODE)
    assert "FX rounding within tolerance: break 7" in r.metadata["reason"]
    clearing, rounding = got.accounts
    assert (clearing.id, clearing.owner_kind, clearing.owner_id) == (
        CLEARING,
        OwnerKind.PROVIDER,
        "softswiss",
    )
    assert (rounding.id, rounding.owner_kind) == (ROUNDING, OwnerKind.PLATFORM)


REVERSALS = [
    ("the adjustment posted is undone the other way", "recon:fx:7",
     ("recon:fx:7:reversal", ROUNDING, CLEARING, 1)),
    ("a reversal is not reversed again", "recon:fx:7:reversal", None),
    ("a break no rule adjusted has nothing to undo", "", None),
    ("another break's adjustment is not this one's", "recon:fx:8", None),
]  # fmt: skip


@pytest.mark.parametrize(("why", "posted", "want"), REVERSALS, ids=[c[0] for c in REVERSALS])
def test_reopening_an_adjusted_break_reverses_exactly_its_adjustment(
    why: str, posted: str, want: tuple[str, str, str, int] | None
) -> None:
    got = fx_reversal(7, FX, posted)
    if want is None:
        assert got is None
        return
    assert got is not None
    r = got.request
    assert (r.id, r.debit_account_id, r.credit_account_id, r.amount) == want


# -- re-driving a missing line -------------------------------------------------------------

AT = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
LINE = ReportLine("softswiss", "ss-0302.csv", 4, "a3", "bet", "op1", "p2", "g2", "EUR", 500, AT)
NOW = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)

REDRIVES = [
    ("a bet becomes the provider's bet event", LINE, "slots", "softswiss:a3:bet"),
    ("a rollback names its original by any kind", replace(LINE, kind="rollback", ref="a1"),
     "slots", "softswiss:a3:rollback"),
    ("a round's net is no single transaction", replace(LINE, kind="round_net"), "slots",
     "a round's net is no event"),
    ("a game type is needed like any imported line", LINE, "", "missing game_type"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("why", "line", "game_type", "want"), REDRIVES, ids=[c[0] for c in REDRIVES]
)
def test_a_missing_line_is_re_driven_as_the_event_tally_import_would_make(
    why: str, line: ReportLine, game_type: str, want: str
) -> None:
    got = redrive_event(9, 3, line, game_type, NOW)
    if not isinstance(got, Event):
        assert want in got
        return
    assert got.key == want and got.source is Source.PROVIDER
    assert (got.amount, got.currency, got.occurred_at, got.recorded_at) == (500, "EUR", AT, NOW)
    if line.kind == "rollback":
        assert got.ref == "softswiss:a1:*"
    provenance = json.loads(got.raw)["redriven_from"]
    assert provenance == {"report": "ss-0302.csv", "line": 4, "break": 9, "run": 3}
