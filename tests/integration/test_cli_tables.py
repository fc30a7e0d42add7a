"""Every CLI table keeps amounts and ids whole, whatever the terminal's width."""

from __future__ import annotations

import ast
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from tally.entrypoints.cli.tables import NOTHING, Table

AMOUNTS = ["-115604123456.78", "10183000000.25", "3360039754137", "0.00", "1,234,567,890.12"]
IDS = ["player:pl000002:wallet:EUR", "prov2:prov2-r000123:bet:pragmatic-feed-round-0042"]
CLI = Path(__file__).resolve().parents[2] / "src" / "tally" / "entrypoints" / "cli"


def _render(table: Table, width: int) -> str:
    out = StringIO()
    Console(file=out, width=width, color_system=None, legacy_windows=False).print(table)
    return out.getvalue()


def _wide_table() -> Table:
    table = Table(
        "account",
        "transfer id",
        "kind",
        "debits posted",
        "credits posted",
        "net",
        "commission accrued",
        "note",
        title="Balances",
    )
    for n, amount in enumerate(AMOUNTS):
        table.add_row(
            IDS[0],
            IDS[1],
            "bet",
            amount,
            AMOUNTS[-1 - n],
            f"[green]{amount}[/green]",
            f"{amount} EUR",
            "a longer note that may wrap at its spaces when the terminal is narrow",
        )
    return table


@pytest.mark.parametrize("width", [80, 60, 120])
def test_every_amount_and_id_appears_whole_at_any_terminal_width(width: int) -> None:
    out = _render(_wide_table(), width)
    assert "…" not in out
    words = set(out.split())
    for amount in AMOUNTS:
        assert amount in words, f"{amount} cut at width {width}:\n{out}"
    for identifier in IDS:
        assert identifier in words, f"{identifier} cut at width {width}:\n{out}"
    assert all(len(line) <= width for line in out.splitlines())


@pytest.mark.parametrize("width", [80, 60, 120])
def test_column_names_are_wrapped_at_their_spaces_never_cut(width: int) -> None:
    headers = ["store", "ledger /s", "naive /s", "raw /s", "x naive", "of raw"]
    headers += ["submit p50/p99 ms", "commit p50/p99 ms", "peak MB", "targets"]
    table = Table(*headers)
    table.add_row("postgres", "31,204", "2,410", "48,337", "12.9", "65%")
    table.add_row("sqlite", "101,552", "3,301", "152,010", "30.8", "67%", "1.2 / 4.5")
    out = _render(table, width)
    assert "…" not in out
    words = out.split()
    for word in " ".join(headers).split():
        assert word in words, f"{word!r} cut at width {width}:\n{out}"


def test_a_table_that_fits_keeps_its_columns_side_by_side_with_figures_right_aligned() -> None:
    table = Table("currency", "debits posted")
    table.add_row("EUR", "72300139589.26")
    table.add_row("JPY", "3360")
    out = _render(table, 120)
    assert "┃ currency ┃  debits posted ┃" in out
    assert "│ JPY      │           3360 │" in out


def test_a_table_too_wide_for_the_terminal_becomes_one_block_per_row() -> None:
    lines = _render(_wide_table(), 80).splitlines()
    assert lines[0].strip() == "Balances"
    rows = [line.split() for line in lines]
    assert sum(1 for words in rows if words[:1] == ["account"]) == len(AMOUNTS)
    assert ["debits", "posted", AMOUNTS[0]] in rows


def test_a_block_puts_each_label_above_its_value_when_side_by_side_would_cut_an_id() -> None:
    rows = [line.split() for line in _render(_wide_table(), 60).splitlines()]
    at = rows.index(["transfer", "id"])
    assert rows[at + 1] == [IDS[1]]


def test_a_table_without_rows_says_so() -> None:
    assert _render(Table("id", "amount", title="Transfers"), 80).strip() == (
        f"Transfers: {NOTHING}"
    )


def test_every_cli_table_goes_through_the_one_helper() -> None:
    offenders = []
    for module in sorted(CLI.glob("*.py")):
        if module.name == "tables.py":
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "rich.table":
                offenders.append(module.name)
    assert offenders == [], "print tables with tally.entrypoints.cli.tables.Table"


def test_an_id_that_looks_like_an_emoji_code_prints_as_it_is() -> None:
    table = Table("account", "net")
    table.add_row("player:cake:wallet:EUR", "[green]12.00[/green]")
    out = _render(table, 80)
    assert "player:cake:wallet:EUR" in out and "12.00" in out and "[green]" not in out
