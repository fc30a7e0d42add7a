"""The ledger benchmark runs end to end on a tiny workload and writes its figures."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tally.entrypoints.cli import app


def test_the_ledger_benchmark_writes_json_and_a_chart(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "ledger",
            "--transfers",
            "3000",
            "--accounts",
            "500",
            "--stores",
            "sqlite",
            "--naive-sample",
            "300",
            "--submitters",
            "2",
            "--out",
            str(tmp_path),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "ledger-latest.json").read_text())
    assert figures["measured_at"].endswith("+00:00")
    [sqlite] = figures["stores"]
    assert sqlite["store"] == "sqlite"
    for run in ("ledger", "naive", "raw"):
        assert sqlite[run]["transfers_per_s"] > 0
    assert sqlite["ledger"]["transfers"] == 3000
    assert sqlite["ledger"]["refused"] == 0
    assert sqlite["ledger"]["nets_to_zero"] is True
    assert set(sqlite["targets"]) >= {
        "met_transfers_per_s",
        "met_ratio_to_naive",
        "met_peak_memory",
    }
    assert (tmp_path / "ledger-latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
