"""The benchmarks run end to end on tiny workloads, through their door (``python -m bench``
from the repository's root, as ``make bench`` runs them), and write their figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ran:
    exit_code: int
    output: str


def bench(args: list[str], env: dict[str, str] | None = None) -> Ran:
    """``python -m bench ARGS`` in a fresh interpreter from the repository's root."""
    process = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )
    return Ran(process.returncode, process.stdout)


def test_the_ledger_benchmark_writes_json_and_a_chart(tmp_path: Path) -> None:
    result = bench(
        [
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
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    # In an 80-column terminal the table wraps or stacks; no column name or figure is cut.
    assert "…" not in result.output
    for word in [
        "ledger",
        "naive",
        "raw",
        "of",
        "submit",
        "commit",
        "p50/p99",
        "ms",
        "peak",
        "MB",
        "targets",
    ]:
        assert word in result.output.split(), word
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


def test_the_gateway_benchmark_answers_every_callback_and_logs_every_event(
    tmp_path: Path,
) -> None:
    args = ["gateway", "--rate", "200", "--seconds", "1", "--players", "50"]
    result = bench([*args, "--no-naive", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "gateway-latest.json").read_text())["gateway"]
    assert run["statuses"] == {"200": 200}
    assert run["events_logged"] == run["events_expected"] == 600
    assert run["wallet_transfers"] == run["wallet_transfers_expected"]
    assert (tmp_path / "gateway-latest.png").stat().st_size > 0


def test_the_import_and_settlement_benchmarks_write_their_figures(tmp_path: Path) -> None:
    result = bench(["import", "--lines", "2000", "--naive-sample", "100", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    imported = json.loads((tmp_path / "import-latest.json").read_text())
    assert imported["batched"]["events_logged"] == imported["batched"]["counts"]["accepted"]
    args = ["settlement", "--events", "3000", "--stores", "sqlite"]
    args += ["--naive-sample", "300", "--rate", "500", "--seconds", "1", "--out", str(tmp_path)]
    result = bench(args)
    assert result.exit_code == 0, result.output
    [sqlite] = json.loads((tmp_path / "settlement-latest.json").read_text())["stores"]
    assert sqlite["naive"]["same_statements_as_batched"] is True
    assert sqlite["replay"]["statements"] > 0
    assert sqlite["latency"]["latency_ms"]["p99"] > 0
    assert (tmp_path / "settlement-latest.png").stat().st_size > 0


def test_the_reconciliation_benchmark_reconciles_every_line_and_writes_its_figures(
    tmp_path: Path,
) -> None:
    args = ["reconcile", "--lines", "3000", "--stores", "sqlite", "--naive-sample", "300"]
    result = bench([*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    [sqlite] = json.loads((tmp_path / "reconcile-latest.json").read_text())["stores"]
    assert [s["lines"] for s in sqlite["sizes"]] == [1000, 3000]
    largest = sqlite["sizes"][-1]
    # Every 1,000th play is left out of the report: the rest is reconciled, none refused.
    assert largest["build"]["report_lines"] == largest["run"]["lines"] == 2997
    assert largest["run"]["refused"] == 0
    assert largest["run"]["breaks"] > 0
    # Every injected break is found with its kind, and nothing else is reported.
    assert largest["run"]["injected"] == 5
    assert largest["run"]["precision"] == largest["run"]["recall"] == 1.0
    assert sqlite["targets"]["met_precision_recall"]
    assert largest["run"]["lines_per_s"] > 0 and largest["run"]["rss_peak_mb"] > 0
    naive = sqlite["naive"]
    assert naive["lines"] == 300 and naive["missing"] == 0
    assert naive["matched"] + naive["differ"] == 300
    assert sqlite["ratio_to_naive"] > 0
    assert (tmp_path / "reconcile-latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_rails_benchmark_writes_its_figures(tmp_path: Path) -> None:
    result = bench(
        [
            "rails",
            "--payouts",
            "600",
            "--naive-sample",
            "20",
            "--webhooks",
            "200",
            "--payments",
            "50",
            "--out",
            str(tmp_path),
        ],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "rails-latest.json").read_text())
    assert figures["psp"]["payouts"] == 600 and figures["psp"]["paid_twice"] == 0
    assert figures["psp"]["payouts_per_s"] > figures["psp"]["naive"]["payouts_per_s"] > 0
    assert figures["webhooks"]["webhooks_per_s"] > 0
    assert figures["bank_file"]["payments"] == 50


def test_the_console_benchmark_times_every_page(tmp_path: Path) -> None:
    args = ["console", "--transfers", "2000", "--requests", "3", "--settlement-events", "200"]
    args += ["--consoles", "5", "--seconds", "3"]
    result = bench([*args, "--out", str(tmp_path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    found = json.loads((tmp_path / "console-latest.json").read_text())
    assert found["transfers"] == 2000
    assert {"overview", "ledger account", "ledger page 2", "settlement", "audit"} <= set(
        found["pages"]
    )
    for page in found["pages"].values():
        assert 0 < page["p50_ms"] <= page["p95_ms"] <= page["max_ms"]
    assert found["worst_p95_ms"] == max(p["p95_ms"] for p in found["pages"].values())
    live = found["live_consoles"]
    assert live["consoles_fed"] == live["consoles"] == 5  # every feed sent its figures
    assert live["beside_ms"]["p99"] > 0 and live["alone_ms"]["p99"] > 0


def test_the_lifecycle_benchmark_archives_verifies_and_backs_up_under_load(
    tmp_path: Path,
) -> None:
    sizes = ["--rows", "3000", "--naive-sample", "500", "--backup-rows", "3000"]
    load = ["--rate", "100", "--seconds", "24"]
    result = bench(["lifecycle", *sizes, *load, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output[-2000:]
    figures = json.loads((tmp_path / "lifecycle-latest.json").read_text())
    assert figures["archive"]["rows"] == 3000
    assert figures["archive"]["archive_rows_per_s"] > 0
    backup = figures["backup"]
    # Both backups ran while the load went on, and each verified afterwards.
    for method in ("api", "vacuum"):
        assert backup[method]["verified"] is True
        assert backup[method]["callbacks"] > 0
