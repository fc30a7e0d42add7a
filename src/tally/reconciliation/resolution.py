"""Automatic resolution rules: which breaks close themselves, and how. Pure.

Each rule only decides; the service carries the decision out with its audit record in
the same transaction, under a ``rule:`` actor, and every one can be undone by reopening
the break (audited too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

from tally.events.model import Event
from tally.ingest.lines import ReportFormat, to_event
from tally.kernel.money import format_amount
from tally.ledger.model import Account, OwnerKind, TransferRequest
from tally.reconciliation.model import Break, BreakKind, BreakStatus, MatchRules, ReportLine

TIMING_ACTOR = "rule:reconciliation.timing"
FX_ACTOR = "rule:reconciliation.fx_rounding"
FX_CODE = "recon_fx_rounding"  # the adjustment transfers' code (and its reversals')
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


# -- rule (b): FX rounding within tolerance is adjusted ---------------------------------


def recon_clearing_account(provider: str, currency: str) -> Account:
    """The provider's side of reconciliation adjustments: what Tally moved to meet the
    provider's own figures."""
    return Account(
        f"provider:{provider}:recon_clearing:{currency}",
        OwnerKind.PROVIDER,
        provider,
        currency,
        "recon_clearing",
    )


def fx_rounding_account(currency: str) -> Account:
    """The platform's own account that absorbs providers' FX rounding."""
    return Account(
        f"platform:fx_rounding:{currency}", OwnerKind.PLATFORM, "platform", currency, "fx_rounding"
    )


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One adjustment transfer a rule posts for a break, and the accounts it needs."""

    request: TransferRequest
    accounts: tuple[Account, Account]


def adjustment_id(break_id: int) -> str:
    return f"recon:fx:{break_id}"


def _adjustment(break_id: int, b: Break, *, reversal: bool) -> Adjustment:
    clearing = recon_clearing_account(b.provider, b.currency)
    rounding = fx_rounding_account(b.currency)
    # The report above Tally (a positive difference): the platform pays the rounding to
    # the provider's clearing account; below, the clearing account gives it back. A
    # reversal moves the same amount the other way.
    up = b.difference > 0
    if reversal:
        up = not up
    debit, credit = (rounding, clearing) if up else (clearing, rounding)
    tid = adjustment_id(break_id) + (":reversal" if reversal else "")
    why = "reversal of the FX rounding adjustment" if reversal else "FX rounding within tolerance"
    request = TransferRequest(
        id=tid,
        debit_account_id=debit.id,
        credit_account_id=credit.id,
        amount=abs(b.difference),
        currency=b.currency,
        code=FX_CODE,
        metadata={
            "reason": f"{why}: break {break_id} ({b.report_ref or b.tally_key})",
            "break": str(break_id),
            "difference": format_amount(b.difference, b.currency),
        },
    )
    return Adjustment(request, (clearing, rounding))


def fx_adjustment(break_id: int, b: Break, rules: MatchRules) -> Adjustment | None:
    """The transfer that resolves an FX rounding break, or None when the rule does not
    apply: another kind, another provider's rules, nothing to move, or a difference past
    the rules' FX rounding tolerance (then a person looks at it)."""
    if b.kind is not BreakKind.FX_ROUNDING or b.provider != rules.provider:
        return None
    if b.difference == 0 or abs(b.difference) > rules.fx_rounding:
        return None
    return _adjustment(break_id, b, reversal=False)


def fx_reversal(break_id: int, b: Break, posted: str) -> Adjustment | None:
    """The transfer that undoes the adjustment ``posted`` (the break's kept adjustment)
    when the break is reopened; None if there is nothing (left) to undo."""
    if b.kind is not BreakKind.FX_ROUNDING or posted != adjustment_id(break_id):
        return None
    if b.difference == 0:
        return None
    return _adjustment(break_id, b, reversal=True)


# -- re-driving a line missing in Tally --------------------------------------------------


def redrive_event(
    break_id: int, run_id: int, line: ReportLine, game_type: str, now: datetime
) -> Event | str:
    """The report line as an event through ``tally import``'s own translation (the same
    checks as any report line), its provenance (report file and line, the break and run)
    in the event's ``raw``; or why it cannot be one."""
    if line.kind == "round_net":
        return "a round's net is no event: only single transactions are re-driven"
    fields = {
        "tx_id": line.tx_id,
        "kind": line.kind,
        "operator": line.operator,
        "player": line.player,
        "game_type": game_type,
        "amount": format_amount(line.amount, line.currency),
        "occurred_at": line.occurred_at.astimezone(UTC).isoformat(),
        "round_id": line.round_id,
        "currency": line.currency,
        "ref": line.ref,
    }
    raw = json.dumps(
        {
            "redriven_from": {
                "report": line.source,
                "line": line.line,
                "break": break_id,
                "run": run_id,
            },
            "fields": fields,
        },
        sort_keys=True,
    )
    made = to_event(ReportFormat(line.provider, UTC, line.currency), fields, raw, now)
    if isinstance(made, Event):
        return made
    return f"{made.reason.value}: {made.detail}"
