"""A period does not close over unresolved reconciliation breaks unless finance overrides
it with a note, which the close's audit record keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.entrypoints.cli import app
from tests.integration.test_cli_settlement import CONTRACT

# The generic layout (Tally's own names): acme's report has a bet Tally never recorded.
REPORT = (
    "tx_id,kind,operator,player,round_id,currency,amount,occurred_at,ref\n"
    "z1,bet,op1,p1,g1,EUR,2.00,2026-02-10T10:00:00,\n"
)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path))
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"acme": {"version": 1}}))
    monkeypatch.setenv("TALLY_RECONCILIATION_RULES", str(rules))
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, " ".join(result.output.split())

    return run


def _audited_close(tmp_path: Path) -> dict[str, object]:
    from tally.app.bootstrap import build_app, build_backoffice
    from tally.app.settings import Settings

    with build_app(Settings.from_env()) as tally:
        backoffice = build_backoffice(tally)
        try:
            (entry,) = [
                r.entry for r in backoffice.store.iter_audit() if r.entry.action == "period.closed"
            ]
        finally:
            backoffice.close()
    assert entry.after is not None
    return dict(entry.after)


def test_unresolved_breaks_hold_a_close_until_finance_overrides_them_with_a_note(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    contract, report = tmp_path / "contract.json", tmp_path / "acme-0210.csv"
    contract.write_text(json.dumps(CONTRACT))
    report.write_text(REPORT)
    assert cli("contracts", "add", str(contract))[0] == 0
    code, out = cli("reconcile", "run", str(report), "--provider", "acme")
    assert code == 0 and "1 breaks" in out, out
    code, out = cli("settlement", "close", "acme-std", "op1", "2026-02")
    assert code == 1 and "unresolved reconciliation breaks" in out and "EUR: 1 for 200" in out
    code, out = cli("settlement", "close", "acme-std", "op1", "2026-02", "--override-breaks")
    assert code == 2  # an override says why
    code, out = cli(
        "settlement", "close", "acme-std", "op1", "2026-02", "--override-breaks",
        "--note", "provider confirmed z1 is a test bet",
    )  # fmt: skip
    assert code == 0, out
    after = _audited_close(tmp_path)
    assert after["breaks_override"] == {
        "note": "provider confirmed z1 is a test bet",
        "unresolved": {"EUR": {"count": 1, "amount": 200}},
    }


def test_a_resolved_break_or_another_operators_does_not_hold_the_close(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    contract, report = tmp_path / "contract.json", tmp_path / "acme-0210.csv"
    contract.write_text(json.dumps(CONTRACT))
    report.write_text(REPORT + "z2,bet,op2,p2,g2,EUR,9.00,2026-02-11T10:00:00,\n")
    assert cli("contracts", "add", str(contract))[0] == 0
    assert cli("reconcile", "run", str(report), "--provider", "acme")[0] == 0
    assert cli("reconcile", "resolve", "1", "--note", "test bet, provider agrees")[0] == 0
    code, out = cli("settlement", "close", "acme-std", "op1", "2026-02")
    assert code == 0, out
    assert "breaks_override" not in _audited_close(tmp_path)
