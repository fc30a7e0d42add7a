"""One line of a provider's report as a :class:`ReportLine`, or why not. Pure.

The same rules as ``tally import`` (tally.ingest.lines): amounts are decimal strings
parsed exactly with Decimal (excess precision refused, never rounded), a time without an
offset is the provider's zone's, text is checked for length and for NUL / lone surrogates.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from tally.events.model import in_time_range
from tally.ingest.lines import FIELD_MAX, LineRefusal, is_clean_text
from tally.kernel.currency import is_known
from tally.kernel.money import MoneyError, parse_amount
from tally.quarantine.inputs import Reason
from tally.reconciliation.layouts import OPTIONAL, REQUIRED, ReportLayout
from tally.reconciliation.model import ReportLine


def unknown_columns(layout: ReportLayout, names: list[str]) -> list[str]:
    return sorted(n for n in names if n not in layout.columns and n not in layout.ignored)


def missing_columns(layout: ReportLayout, names: list[str]) -> list[str]:
    have = {layout.columns[n] for n in names if n in layout.columns}
    return [f for f in REQUIRED if f not in have]


def to_report_line(
    layout: ReportLayout,
    provider: str,
    zone: tzinfo,
    data: dict[str, Any],
    source: str,
    number: int,
    *,
    columns_checked: bool = False,
    raw: str = "",
) -> ReportLine | LineRefusal:
    """``columns_checked``: the line's names were checked already (a CSV header's).
    ``raw``: the line the fields were read from; if it is short plain ASCII with no NUL
    and no backslash (so no JSON escape could make one), its fields are too, and are not
    checked one by one (the same rule as ``tally import``)."""
    plain = (
        bool(raw) and len(raw) <= FIELD_MAX and raw.isascii() and "\0" not in raw
        and "\\" not in raw
    )  # fmt: skip
    if not columns_checked:
        unknown = unknown_columns(layout, list(data))
        if unknown:
            return LineRefusal(Reason.MALFORMED, f"unknown column {', '.join(unknown)}")
    f = _fields(layout, data, plain)
    if isinstance(f, LineRefusal):
        return f
    g = f.get
    return _report_line(
        layout, provider, zone, source, number, g("tx_id", ""), g("kind", ""),
        g("operator", ""), g("player", ""), g("currency", ""), g("amount", ""),
        g("occurred_at", ""), g("round_id", ""), g("ref", ""),
    )  # fmt: skip


def column_plan(layout: ReportLayout, names: tuple[str, ...]) -> tuple[tuple[int, str, str], ...]:
    """For a CSV header: (index in the row, column, Tally's name) of each column the
    layout maps, in the layout's order (so a refusal names the same column as
    :func:`to_report_line` would). The header's columns were checked already."""
    at = {n: i for i, n in enumerate(names)}  # a name twice: the last, as dict(zip()) keeps
    return tuple((at[c], c, name) for c, name in layout.columns.items() if c in at)


def row_to_report_line(
    layout: ReportLayout,
    plan: tuple[tuple[int, str, str], ...],
    provider: str,
    zone: tzinfo,
    row: list[str],
    source: str,
    number: int,
    raw: str,
) -> ReportLine | LineRefusal:
    """:func:`to_report_line` for a CSV row already split (``raw`` its line, under the
    header ``plan`` was made from): the fields taken by index, not through a dict."""
    if not (len(raw) <= FIELD_MAX and raw.isascii() and "\0" not in raw and "\\" not in raw):
        for i, column, _ in plan:
            value = row[i]
            if len(value) > FIELD_MAX or not is_clean_text(value):
                return LineRefusal(Reason.MALFORMED, f"{column} is too long or not clean text")
    at = _indexes(plan)
    tx_id, kind, operator, player, currency, amount, occurred_at, round_id, ref = [
        "" if i < 0 else row[i].strip() for i in at
    ]
    return _report_line(
        layout, provider, zone, source, number, tx_id, kind, operator, player, currency,
        amount, occurred_at, round_id, ref,
    )  # fmt: skip


_INDEXES: dict[tuple[tuple[int, str, str], ...], tuple[int, ...]] = {}


def _indexes(plan: tuple[tuple[int, str, str], ...]) -> tuple[int, ...]:
    """Each of Tally's fields' index in a row under ``plan`` (-1: not there), in
    REQUIRED + OPTIONAL order; the last index a name was planned at, as a dict keeps."""
    at = _INDEXES.get(plan)
    if at is None:
        if len(_INDEXES) >= 1_000:  # one a header layout: a few in practice
            _INDEXES.clear()
        where = {name: i for i, _, name in plan}
        at = _INDEXES[plan] = tuple(where.get(name, -1) for name in REQUIRED + OPTIONAL)
    return at


def _report_line(
    layout: ReportLayout,
    provider: str,
    zone: tzinfo,
    source: str,
    number: int,
    tx_id: str,
    kind_word: str,
    operator: str,
    player: str,
    currency_code: str,
    amount_text: str,
    occurred_at: str,
    round_id: str,
    ref: str,
) -> ReportLine | LineRefusal:
    if not (
        tx_id and kind_word and operator and player and currency_code and amount_text
        and occurred_at
    ):  # fmt: skip
        given = (tx_id, kind_word, operator, player, currency_code, amount_text, occurred_at)
        missing = [n for n, v in zip(REQUIRED, given, strict=True) if not v]
        return LineRefusal(Reason.MALFORMED, f"missing {', '.join(missing)}")
    kind = layout.kind(kind_word)
    if kind is None:
        return LineRefusal(Reason.MALFORMED, f"kind {kind_word!r} is not a kind {provider} uses")
    currency = currency_code.upper()
    if not is_known(currency):
        return LineRefusal(Reason.OUT_OF_RANGE, f"currency {currency!r} is unknown")
    try:
        amount = parse_amount(
            amount_text, currency, allow_negative=kind in ("adjustment", "round_net")
        )
    except MoneyError as exc:
        return LineRefusal(Reason.OUT_OF_RANGE, f"amount {amount_text!r}: {exc.detail}")
    try:
        occurred = datetime.fromisoformat(occurred_at)
    except ValueError:
        return LineRefusal(Reason.MALFORMED, "occurred_at is not an ISO 8601 time")
    if not in_time_range(occurred):
        return LineRefusal(Reason.OUT_OF_RANGE, "occurred_at is out of range")
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=zone)
    return ReportLine(
        provider, source, number, tx_id, kind, operator, player, round_id, currency, amount,
        occurred.astimezone(UTC), ref,
    )  # fmt: skip


def _fields(
    layout: ReportLayout, data: dict[str, Any], plain: bool
) -> dict[str, str] | LineRefusal:
    """The line's fields under Tally's names, each checked as text."""
    f: dict[str, str] = {}
    for column, name in layout.columns.items():
        value = data.get(column)
        if value is None:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name != "amount":
            value = str(value)  # ids sent as JSON numbers
        if not isinstance(value, str):
            return LineRefusal(Reason.MALFORMED, f"{column} must be text")
        if not plain and (len(value) > FIELD_MAX or not is_clean_text(value)):
            return LineRefusal(Reason.MALFORMED, f"{column} is too long or not clean text")
        f[name] = value.strip()
    return f
