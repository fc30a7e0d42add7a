"""The break report as canonical bytes (JSON and CSV) with their SHA-256. Pure.

Only what matching decided goes in: the rules, the breaks, the balance rows, the
counts. No run id, no time of the run, no file names or line numbers (a report split
into other files is the same report), so the same inputs and rules give the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

from tally.kernel.money import format_amount
from tally.reconciliation.matching import MatchResult
from tally.reconciliation.model import BalanceRow, Break

CSV_COLUMNS = (
    "id",
    "kind",
    "provider",
    "operator",
    "currency",
    "day",
    "tally_day",
    "report_ref",
    "tally_key",
    "report_amount",
    "tally_amount",
    "difference",
)


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    sha256: str


def break_dict(b: Break) -> dict[str, Any]:
    return {
        "id": b.id,
        "kind": b.kind.code,
        "provider": b.provider,
        "operator": b.operator,
        "currency": b.currency,
        "day": b.day.isoformat(),
        "tally_day": b.tally_day.isoformat() if b.tally_day else "",
        "report_ref": b.report_ref,
        "tally_key": b.tally_key,
        "report_amount": format_amount(b.report_amount, b.currency),
        "tally_amount": format_amount(b.tally_amount, b.currency),
        "difference": format_amount(b.difference, b.currency),
    }


def balance_dict(row: BalanceRow) -> dict[str, Any]:
    c = row.currency
    return {
        "provider": row.provider,
        "operator": row.operator,
        "currency": c,
        "day": row.day.isoformat(),
        "report_total": format_amount(row.report_total, c),
        "tally_total": format_amount(row.tally_total, c),
        "difference": format_amount(row.difference, c),
        "explained": format_amount(row.explained, c),
        "tolerated": format_amount(row.tolerated, c),
        "unexplained": row.unexplained,
        "breaks": list(row.breaks),
    }


def document(result: MatchResult) -> dict[str, Any]:
    return {
        "rules": result.rules.to_dict(),
        "counts": {
            "report_lines": result.report_lines,
            "tally_lines": result.tally_lines,
            "matched": result.matched,
            "breaks": len(result.breaks),
        },
        "breaks": [break_dict(b) for b in result.breaks],
        "balances": [balance_dict(r) for r in result.balances],
    }


def _sealed(body: bytes) -> Rendered:
    return Rendered(body, hashlib.sha256(body).hexdigest())


def to_json(result: MatchResult) -> Rendered:
    text = json.dumps(document(result), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _sealed((text + "\n").encode("ascii"))


def to_csv(result: MatchResult) -> Rendered:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for b in result.breaks:
        d = break_dict(b)
        writer.writerow([d[c] for c in CSV_COLUMNS])
    return _sealed(out.getvalue().encode("utf-8"))
