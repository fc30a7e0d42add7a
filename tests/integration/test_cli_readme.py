"""The README's `tally` examples, and the ones the demo prints, work as written on the demo's
data: each exits 0 and finds something, and no table cuts a figure short."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.app.bootstrap import build_app
from tally.app.settings import Settings
from tally.entrypoints.cli import app
from tally.entrypoints.cli.tables import NOTHING
from tally.kernel.money import format_amount
from tally.settlement.figures import Dimension, live_totals

README = Path(__file__).resolve().parents[2] / "README.md"

# README commands this test does not run, by their leading words, each with its reason.
NOT_RUN = {
    "simulate": "runs a 30-second simulation of its own (test_cli_simulate runs a short one)",
    "serve": "starts the back-office API and runs until stopped (tests/integration/test_api_*)",
    "gateway serve": "starts the gateway's HTTP server and runs until stopped",
    "gateway secret": "asks for the secret on the terminal and changes a provider's credentials",
    "wallet open": "changes data: opens a wallet for a player the demo does not have",
    "import file": "reads the user's own report file",
    "import watch": "watches a folder and runs until stopped",
    "quarantine redrive": "changes data: 12 stands for an id picked from `quarantine list`",
    "quarantine dismiss": "changes data: 12 stands for an id picked from `quarantine list`",
    "feeds listen": "needs NATS and runs until stopped",
    "users create": "asks for a password on the terminal and creates a user",
    "reconcile run": "reads the user's own provider report (test_cli_reconcile runs one)",
    "reconcile breaks": "the demo reconciles no report, so there are no breaks to list",
    "reconcile resolve": "changes data: 7 stands for an id picked from `reconcile breaks`",
    "payouts": "the demo registers no counterparty's payment details, so it has no run to "
    "build, approve or show (tests/integration/test_cli_payouts.py runs these commands)",
    "alerts list": "the demo raises no alert (test_cli_alerts lists some)",
    "alerts ack": "changes data: 3 stands for an id picked from `alerts list`",
    "alerts silence": "changes data: creates a silence (test_cli_alerts makes one)",
    "alerts rules": "reads the user's own rules file (test_cli_alerts saves one)",
    "alerts actions": "the demo's alerts fire no playbook (test_cli_alerts lists some)",
    "alerts undo": "changes data: 7 stands for an id picked from `alerts actions`",
    "alerts watch": "runs until stopped and delivers to the user's own sinks",
    "dashboards export": "writes files into the repository (tests/unit/test_dashboards.py)",
    "backup": "writes a backup directory (tests/integration/test_lifecycle_backup_sqlite.py)",
    "archive": "writes and reads archive directories (test_lifecycle_archive_sqlite.py)",
    "retention": "deletes the demo's old periods from the live file (test_lifecycle_retention_*)",
    "maintain": "needs PostgreSQL in scaled mode (tests/integration/test_pg_lifecycle.py)",
}


@dataclass(frozen=True)
class Example:
    line: str
    env: dict[str, str]
    args: list[str]


def _parse(line: str) -> Example | None:
    """A shell line that runs `tally`, as its environment and arguments; else None."""
    words = shlex.split(line, comments=True)
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if not words or Path(words[0]).name != "tally":
        return None
    return Example(line.split("#")[0].strip(), env, words[1:])


def readme_examples() -> list[Example]:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)
    found = [_parse(line) for block in blocks for line in block.splitlines()]
    return [e for e in found if e is not None]


def _excluded(example: Example) -> str | None:
    words = " ".join(a for a in example.args if not a.startswith("-"))
    return next((why for lead, why in NOT_RUN.items() if f"{words} ".startswith(f"{lead} ")), None)


TO_RUN = [e for e in readme_examples() if _excluded(e) is None]


@dataclass(frozen=True)
class Demo:
    directory: Path
    output: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """A short `tally demo` (same world, a few seconds of callbacks, no server) in a fresh
    directory, so that the README's relative `data/demo.sqlite` is the demo's file."""
    directory = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        for name in ("TALLY_SQLITE_PATH", "TALLY_DATA_DIR", "TALLY_MODE", "TALLY_KEYS_DIR"):
            patch.delenv(name, raising=False)
        result = CliRunner().invoke(
            app,
            ["demo", "--seconds", "1", "--rate", "2000", "--data-dir", "data", "--no-serve"],
            env={"COLUMNS": "80"},
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        yield Demo(directory, result.output)


def _run(demo: Demo, monkeypatch: pytest.MonkeyPatch, example: Example, columns: int = 80) -> str:
    monkeypatch.chdir(demo.directory)
    for name in ("TALLY_SQLITE_PATH", "TALLY_DATA_DIR", "TALLY_MODE", "TALLY_KEYS_DIR"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(
        app, example.args, env={**example.env, "COLUMNS": str(columns)}, catch_exceptions=False
    )
    out = result.output
    assert result.exit_code == 0, f"{example.line}\n{out}"
    assert out.strip(), f"{example.line} printed nothing"
    assert "not found" not in out and NOTHING not in out, f"{example.line} found nothing:\n{out}"
    assert "…" not in out, f"{example.line} cut something short:\n{out}"
    return out


@pytest.mark.parametrize("example", TO_RUN, ids=[e.line for e in TO_RUN])
def test_each_readme_example_finds_something_in_the_demo_data(
    demo: Demo, monkeypatch: pytest.MonkeyPatch, example: Example
) -> None:
    _run(demo, monkeypatch, example)


def test_the_readme_examples_that_read_the_ledger_name_accounts_the_demo_creates() -> None:
    accounts = [a for e in TO_RUN if e.args[:1] == ["ledger"] for a in e.args if ":" in a]
    assert accounts and all(a.startswith("player:pl") for a in accounts), accounts
    assert {"ledger balance", "ledger transfers", "settlement figures", "audit verify"} <= {
        " ".join(e.args[:2]) for e in TO_RUN
    }


def test_every_readme_example_is_run_or_excluded_with_a_reason_still_in_the_readme() -> None:
    leads = {lead for e in readme_examples() for lead in NOT_RUN if _excluded(e) == NOT_RUN[lead]}
    assert leads == set(NOT_RUN), f"no longer in the README: {set(NOT_RUN) - leads}"


def test_each_command_the_demo_prints_finds_something_in_its_data(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    printed = [
        _parse(line) for line in demo.output.splitlines() if line.startswith("  TALLY_SQLITE")
    ]
    examples = [e for e in printed if e is not None]
    assert len(examples) >= 10
    for example in examples:
        _run(demo, monkeypatch, example)


@pytest.mark.parametrize("columns", [80, 60, 120])
def test_settlement_figures_show_every_amount_whole_at_any_width(
    demo: Demo, monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    example = _parse(
        "TALLY_SQLITE_PATH=data/demo.sqlite tally settlement figures --by provider,game_type"
    )
    assert example is not None
    words = set(_run(demo, monkeypatch, example, columns).split())
    settings = Settings(
        mode="embedded",
        data_dir=demo.directory / "data",
        sqlite_path=demo.directory / "data" / "demo.sqlite",
    )
    with build_app(settings) as tally:
        figures = tally.settlement_store.load_figures()
    rows = live_totals(figures, [Dimension.PROVIDER, Dimension.GAME_TYPE])
    assert rows
    for row in rows:
        currency = dict(row.key)["currency"]
        t = row.totals
        for amount in (t.turnover, t.wins, t.ggr, t.bonuses, row.ngr):
            assert format_amount(amount, currency) in words, (amount, currency, columns)
