"""`tally reconcile` from the command line: a run against imported events, breaks listed,
assigned and closed (audited), the report printed byte for byte with its SHA-256."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.entrypoints.cli import app

EVENTS = (
    "tx_id,kind,operator,player,game_type,amount,occurred_at,round_id,currency\n"
    "a1,bet,op1,p1,slots,10.00,2026-03-02T10:00:00,g1,EUR\n"
    "a2,win,op1,p1,slots,4.00,2026-03-02T10:00:01,g1,EUR\n"
)
REPORT = (
    "action_id,action,casino_id,user_id,game_id,currency,amount,created_at,original_action_id\n"
    "a1,bet,op1,p1,g1,EUR,10.00,2026-03-02T10:00:00,\n"
    "a2,win,op1,p1,g1,EUR,4.50,2026-03-02T10:00:01,\n"
)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, bytes]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, " ".join(result.output.split()), result.stdout_bytes

    return run


def test_a_report_is_reconciled_and_its_break_worked_through_to_written_off(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    events, report = tmp_path / "events.csv", tmp_path / "ss-0302.csv"
    events.write_text(EVENTS)
    report.write_text(REPORT)
    assert cli("import", "file", str(events), "--provider", "softswiss")[0] == 0
    code, out, _ = cli("reconcile", "run", str(report), "--provider", "softswiss")
    assert code == 0, out
    assert "run 1: 2 lines, 0 refused, 1 breaks" in out
    code, out, _ = cli("reconcile", "breaks", "--status", "open")
    assert code == 0 and "amount_mismatch" in out and "0.50" in out
    code, out, _ = cli("reconcile", "assign", "1", "--owner", "ana")
    assert code == 0, out
    code, out, _ = cli("reconcile", "resolve", "1", "--status", "written_off")
    assert code == 2  # --note is required
    code, out, _ = cli("reconcile", "resolve", "1", "--status", "written_off", "--note", "tip")
    assert code == 0, out
    code, out, _ = cli("reconcile", "show", "1")
    assert '"status": "written_off"' in out and '"owner": "ana"' in out
    with sqlite3.connect(tmp_path / "tally.sqlite") as db:
        actions = [a for (a,) in db.execute("SELECT action FROM audit_records ORDER BY seq")]
    assert actions[-3:] == [
        "reconciliation.run",
        "reconciliation.break_assigned",
        "reconciliation.break_written_off",
    ]
    assert cli("audit", "verify")[0] == 0
    code, out, body = cli("reconcile", "report", "1", "--format", "csv")
    assert code == 0
    sha = re.search(r"sha256 ([0-9a-f]{64})", out)
    assert sha is not None
    csv = body[: body.rindex(b"\nsha256")] + b"\n" if b"sha256" in body else body
    assert hashlib.sha256(csv).hexdigest() == sha.group(1)


def test_a_file_sent_twice_is_refused_naming_the_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "ss.csv"
    report.write_text(REPORT)
    assert cli("reconcile", "run", str(report), "--provider", "softswiss")[0] == 0
    code, out, _ = cli("reconcile", "run", str(report), "--provider", "softswiss")
    assert code == 2 and "ss.csv: this file was reconciled before (run 1)" in out
    code, out, _ = cli("reconcile", "run", str(report), "--provider", "acme")
    assert code == 2 and "provider 'acme' is unknown" in out


def test_fx_rounding_is_adjusted_by_the_rule_and_a_missing_line_re_driven_from_the_cli(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('{"softswiss": {"version": 2, "time_tolerance_s": 60, "fx_rounding": 50}}')
    monkeypatch.setenv("TALLY_RECONCILIATION_RULES", str(rules))
    events, report = tmp_path / "events.csv", tmp_path / "ss-0302.csv"
    events.write_text(EVENTS)
    report.write_text(REPORT + "a3,bet,op1,p2,g2,EUR,5.00,2026-03-02T11:00:00,\n")
    assert cli("import", "file", str(events), "--provider", "softswiss")[0] == 0
    code, out, _ = cli("reconcile", "run", str(report), "--provider", "softswiss")
    assert code == 0 and "2 breaks" in out, out
    code, out, _ = cli("reconcile", "show", "2")
    assert '"kind": "fx_rounding"' in out and '"status": "resolved"' in out
    assert '"adjustment": "recon:fx:2"' in out
    code, out, _ = cli("reconcile", "redrive", "2", "--game-type", "slots")
    assert code == 1 and "break 2 is closed" in out
    code, out, _ = cli("reconcile", "redrive", "1", "--game-type", "slots")
    assert code == 0 and "re-driven as event softswiss:a3:bet (accepted)" in out, out
    assert cli("reconcile", "reopen", "1", "--note", "check")[0] == 0
    code, out, _ = cli("reconcile", "redrive", "1", "--game-type", "slots")
    assert code == 0 and "(duplicate)" in out, out
    with sqlite3.connect(tmp_path / "tally.sqlite") as db:
        (logged,) = db.execute(
            "SELECT COUNT(*) FROM event_log WHERE key = 'softswiss:a3:bet'"
        ).fetchone()
        (moved,) = db.execute("SELECT amount FROM transfers WHERE id = 'recon:fx:2'").fetchone()
        actions = [a for (a,) in db.execute("SELECT action FROM audit_records ORDER BY seq")]
    assert (logged, moved) == (1, 50)
    assert actions[-5:] == [
        "reconciliation.run",
        "reconciliation.break_adjusted",
        "reconciliation.break_redriven",
        "reconciliation.break_reopened",
        "reconciliation.break_redriven",
    ]
    assert cli("audit", "verify")[0] == 0
