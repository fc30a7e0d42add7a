"""``tally alerts`` end to end on the embedded store, and the settlement hold: a playbook
holds a provider's settlement for review, the period does not close, one undo and it
closes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.entrypoints.cli import app
from tally.kernel.alerts import AlertSignal, Severity
from tests.integration.test_cli_settlement import CONTRACT


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, " ".join(result.output.split())

    return run


def _signal(**kw: object) -> None:
    """What a detector does: signal through the deployment's sink from bootstrap."""
    from tally.app.bootstrap import build_app, build_backoffice
    from tally.app.settings import Settings

    with build_app(Settings.from_env()) as tally:
        backoffice = build_backoffice(tally)
        try:
            base: dict[str, object] = {
                "kind": "risk.settlement_shift", "key": "acme/op1", "severity": Severity.CRITICAL,
                "cause": "acme's GGR moved 60% against last week", "at": tally.clock.now(),
                "provider": "acme", "operator": "op1", "money_at_risk": 500_000,
                "currency": "EUR",
            }  # fmt: skip
            base.update(kw)
            backoffice.alerts.signal(AlertSignal(**base))  # type: ignore[arg-type]
        finally:
            backoffice.close()


def test_a_held_provider_does_not_close_until_the_hold_is_undone(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    contract, rules = tmp_path / "contract.json", tmp_path / "rules.json"
    contract.write_text(json.dumps(CONTRACT))
    hold = {
        "name": "hold-acme",
        "action": "hold_settlement",
        "match": {"kind": "risk.settlement_shift"},
        "mode": "live",
    }
    rules.write_text(json.dumps({"playbooks": [hold]}))
    assert cli("contracts", "add", str(contract))[0] == 0
    code, out = cli("alerts", "rules", str(rules))
    assert code == 0 and "version 1 saved" in out, out
    _signal()
    code, out = cli("alerts", "list")
    assert code == 0 and "risk.settlement_shift" in out and "acme/op1" in out, out
    code, out = cli("alerts", "actions")
    assert code == 0 and "hold-acme" in out and "done" in out, out
    code, out = cli("settlement", "close", "acme-std", "op1", "2026-02")
    assert code == 1 and "held for review by playbook action 1" in out, out
    code, out = cli("alerts", "undo", "1")
    assert code == 0 and "action 1 undone" in out, out
    code, out = cli("settlement", "close", "acme-std", "op1", "2026-02")
    assert code == 0, out


def test_bad_rules_and_a_silence_of_everything_are_refused(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.json"
    inhibition = {"source": {"kind": "a"}, "target": {"kind": "b"}, "equal": ["planet"]}
    rules.write_text(json.dumps({"inhibitions": [inhibition]}))
    code, out = cli("alerts", "rules", str(rules))
    assert code == 2 and "unknown or unusable dimension 'planet'" in out, out
    code, out = cli("alerts", "silence", "kind=*", "--reason", "quiet please")
    assert code == 2 and "every alert" in out, out
    code, out = cli("alerts", "silence", "provider=acme", "--reason", "maintenance", "--hours", "1")
    assert code == 0 and "silence 1 until" in out, out
    _signal()
    code, out = cli("alerts", "list")
    assert "silence:1" in out, out
    code, out = cli("alerts", "ack", "1")
    assert code == 0 and "acknowledged" in out, out
    code, out = cli("alerts", "show", "1")
    assert code == 0 and '"status": "acknowledged"' in out, out
    code, out = cli("alerts", "unsilence", "1")
    assert code == 0, out
    code, out = cli("alerts", "watch", "--once")
    assert code == 0, out
