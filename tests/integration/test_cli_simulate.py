"""The demo and the simulator run end to end through the CLI on a tiny world."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tally.entrypoints.cli import app


def test_the_demo_settles_closes_and_reports_a_ledger_that_nets_to_zero(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["demo", "--seconds", "1", "--rate", "2000", "--data-dir", str(tmp_path), "--no-serve"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "NO" not in result.output
    statements = sorted((tmp_path / "statements").glob("*.json"))
    assert len(statements) == 12  # 4 providers x 3 operators, March closed
    document = json.loads(statements[0].read_text())
    assert document["schema"] == "tally.statement/1"
    assert document["period"]["label"] == "2026-03"
    assert (tmp_path / "demo.sqlite").exists()


def test_simulate_writes_statements_under_the_data_dir(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(
        app,
        ["simulate", "--seconds", "1", "--rate", "2000", "--players", "100", "--no-faults"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "statements closed" in result.output
    assert list((tmp_path / "statements").glob("*.csv"))
