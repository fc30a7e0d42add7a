"""What reconciliation signals to the risk context's alerts, and under which names. Pure.

Three conditions a person must act on (``kernel.alerts``; each named by kind and key, so
the same condition signalled again is one alert):

- ``reconciliation.balance_unexplained``: a (provider, operator, currency, day) balance
  whose difference no break explains; cleared when a later run finds the row adding up;
- ``reconciliation.break_aged``: a break still open (or being investigated) past
  ``ReconciliationLimits.break_alert_age_s``; cleared when it is resolved or written off;
- ``reconciliation.report_refused``: a report file refused whole (sent twice, an unknown
  provider, a header the provider's layout does not read); nothing clears it, a person
  closes it (it is one event, not a state).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tally.kernel.alerts import AlertSignal, Severity
from tally.reconciliation.model import BalanceRow, KeptBreak

BALANCE_UNEXPLAINED = "reconciliation.balance_unexplained"
BREAK_AGED = "reconciliation.break_aged"
REPORT_REFUSED = "reconciliation.report_refused"


def balance_key(row: BalanceRow) -> str:
    return f"{row.provider}:{row.operator}:{row.currency}:{row.day.isoformat()}"


def break_key(break_id: int) -> str:
    return f"break:{break_id}"


def balance_unexplained(row: BalanceRow, run_id: int, at: datetime) -> AlertSignal:
    gap = row.difference - row.explained
    return AlertSignal(
        kind=BALANCE_UNEXPLAINED,
        key=balance_key(row),
        severity=Severity.CRITICAL,
        cause=(
            f"{row.provider}'s report for {row.operator} on {row.day.isoformat()} differs "
            f"from Tally by {row.difference} minor units of {row.currency}, of which "
            f"{gap} no break explains"
        ),
        at=at,
        provider=row.provider,
        operator=row.operator,
        money_at_risk=abs(gap),
        currency=row.currency,
        evidence={
            "day": row.day.isoformat(),
            "report_total": str(row.report_total),
            "tally_total": str(row.tally_total),
            "difference": str(row.difference),
            "explained": str(row.explained),
            "tolerated": str(row.tolerated),
            "unexplained": str(gap),
            "run": str(run_id),
        },
        refs=(f"recon_run:{run_id}",),
    )


def break_aged(kept: KeptBreak, now: datetime) -> AlertSignal:
    b = kept.brk
    hours = (now - kept.found_at) // timedelta(hours=1)
    return AlertSignal(
        kind=BREAK_AGED,
        key=break_key(kept.id),
        severity=Severity.WARNING,
        cause=(
            f"break {kept.id} ({b.kind.code}, {b.provider} / {b.operator}, "
            f"{b.day.isoformat()}) has been {kept.status.value} for {hours} hours"
            + (f", owner {kept.owner}" if kept.owner else ", with no owner")
        ),
        at=now,
        provider=b.provider,
        operator=b.operator,
        money_at_risk=abs(b.difference),
        currency=b.currency,
        evidence={
            "kind": b.kind.code,
            "status": kept.status.value,
            "owner": kept.owner,
            "found_at": kept.found_at.isoformat(),
            "age_hours": str(hours),
            "difference": str(b.difference),
            "run": str(kept.run_id),
        },
        refs=(f"break:{kept.id}", f"recon_run:{kept.run_id}"),
    )


def report_refused(
    provider: str, name: str, sha: str, reason: str, detail: str, at: datetime
) -> AlertSignal:
    return AlertSignal(
        kind=REPORT_REFUSED,
        key=f"{provider}:{sha}",
        severity=Severity.WARNING,
        cause=f"a report file was refused whole: {detail}",
        at=at,
        provider=provider,
        evidence={"file": name, "file_sha256": sha, "reason": reason, "detail": detail},
    )
