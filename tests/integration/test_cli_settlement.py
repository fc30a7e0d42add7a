"""Settlement from the command line: configuration edits and period closes are audited."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.entrypoints.cli import app

CONTRACT = {
    "contract_id": "acme-std",
    "version": 1,
    "provider": "acme",
    "effective_from": "2026-01-01T00:00:00+00:00",
    "settlement_currency": "EUR",
    "rates": {"*": [{"floor": 0, "rate": "0.10"}]},
    "minimum_fee": 5000,
}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        # Rich wraps long lines to the terminal's width: compare words, not layout.
        return result.exit_code, " ".join(result.output.split())

    return run


def test_configuration_edits_and_a_close_land_in_the_audit_trail(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    contract = tmp_path / "contract.json"
    contract.write_text(json.dumps(CONTRACT))
    code, out = cli("contracts", "add", str(contract))
    assert code == 0 and "acme-std v1: created" in out
    assert "acme-std v1: exists" in cli("contracts", "add", str(contract))[1]
    code, out = cli(
        "partners",
        "add-agent",
        "hq",
        "--operator",
        "op1",
        "--rolling",
        "0.02",
        "--losing",
        "0.3",
        "--from",
        "2026-01-01T00:00:00+00:00",
    )
    assert code == 0, out
    code, out = cli("settlement", "close", "acme-std", "op1", "2026-02")
    assert code == 0, out
    assert "fee 50.00 EUR" in out  # the minimum fee of an empty month
    code, out = cli("settlement", "close", "acme-std", "op1", "2026-02")
    assert code == 1 and "is closed" in out
    code, out = cli("settlement", "close", "acme-std", "op1", "2999-01")
    assert code == 1 and "cannot close before" in out

    from tally.app.bootstrap import build_app, build_backoffice
    from tally.app.settings import Settings

    with build_app(Settings.from_env()) as tally:
        backoffice = build_backoffice(tally)
        try:
            actions = [r.entry.action for r in backoffice.audit.page(limit=100).items]
            checked, problems = backoffice.audit.verify()
        finally:
            backoffice.close()
    assert actions == ["contract.version_added", "partner.agent_added", "period.closed"]
    assert (checked, problems) == (3, [])


class AuditDown(RuntimeError):
    """The audit append failed."""


def _audit_down(monkeypatch: pytest.MonkeyPatch) -> None:
    from tally.adapters.sql.backoffice import SqlBackofficeStore

    def fail(self: object, cur: object, entry: object) -> object:
        raise AuditDown("the audit append failed")

    monkeypatch.setattr(SqlBackofficeStore, "_append", fail)


def _trail() -> tuple[list[str], int]:
    """The actions on the audit trail, and the balance of p1's EUR wallet (-1: none)."""
    from tally.app.bootstrap import build_app, build_backoffice
    from tally.app.settings import Settings

    with build_app(Settings.from_env()) as tally:
        backoffice = build_backoffice(tally)
        try:
            actions = [r.entry.action for r in backoffice.audit.page(limit=100).items]
            assert backoffice.audit.verify()[1] == []
        finally:
            backoffice.close()
        balance = tally.ledger.balance("player:p1:wallet:EUR")
    return actions, -1 if balance is None else balance.credits_posted


def test_a_wallet_opened_and_a_deposit_from_the_cli_are_recorded(cli) -> None:  # type: ignore[no-untyped-def]
    code, out = cli("wallet", "open", "p1", "--operator", "op1", "--currency", "EUR")
    assert code == 0, out
    code, out = cli("wallet", "deposit", "p1", "25.00", "--currency", "EUR", "--reference", "c1")
    assert code == 0, out
    assert _trail() == (["wallet.opened", "wallet.deposited"], 2500)


def test_a_cli_change_whose_audit_append_fails_leaves_neither_change_nor_record(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as down:
        _audit_down(down)
        with pytest.raises(AuditDown):
            cli("wallet", "open", "p1", "--operator", "op1", "--currency", "EUR")
    assert _trail() == ([], -1)

    assert cli("wallet", "open", "p1", "--operator", "op1", "--currency", "EUR")[0] == 0
    with monkeypatch.context() as down:
        _audit_down(down)
        with pytest.raises(AuditDown):
            cli("wallet", "deposit", "p1", "25.00", "--currency", "EUR", "--reference", "c1")
    assert _trail() == (["wallet.opened"], 0)

    contract = tmp_path / "contract.json"
    contract.write_text(json.dumps(CONTRACT))
    with monkeypatch.context() as down:
        _audit_down(down)
        with pytest.raises(AuditDown):
            cli("contracts", "add", str(contract))
    assert "acme-std" not in cli("contracts", "list")[1]
    assert _trail()[0] == ["wallet.opened"]

    assert cli("contracts", "add", str(contract))[0] == 0
    with monkeypatch.context() as down:
        _audit_down(down)
        with pytest.raises(AuditDown):
            cli("settlement", "close", "acme-std", "op1", "2026-02")
    assert _trail()[0] == ["wallet.opened", "contract.version_added"]
    code, out = cli("settlement", "close", "acme-std", "op1", "2026-02")
    assert code == 0, out  # nothing half-done: the close goes through once the trail is back
    assert _trail()[0] == ["wallet.opened", "contract.version_added", "period.closed"]


def test_figures_show_a_closed_periods_statement_fee_and_name_the_version(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    contract = tmp_path / "contract.json"
    contract.write_text(json.dumps(CONTRACT))
    assert cli("contracts", "add", str(contract))[0] == 0
    assert cli("settlement", "close", "acme-std", "op1", "2026-02")[0] == 0
    code, out = cli("settlement", "figures")
    assert code == 0, out
    # Nothing accrued live in February; the statement's fee is the 50.00 minimum.
    row = r"acme-std\W+1\W+acme\W+op1\W+2026-02\W+closed\W+EUR\W+50\.00"
    assert re.search(row, out), out


def test_a_rollback_whose_original_never_came_is_listed_after_its_period_closed(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    contract = tmp_path / "contract.json"
    contract.write_text(json.dumps(CONTRACT))
    assert cli("contracts", "add", str(contract))[0] == 0
    report = tmp_path / "report.csv"
    report.write_text(
        "tx_id,kind,operator,player,game_type,amount,occurred_at,ref\n"
        "b1,bet,op1,p1,slots,10.00,2026-02-02T10:00:00,\n"
        "rb1,rollback,op1,p1,slots,0,2026-02-02T10:05:00,w404\n"
        "rb2,rollback,op1,p1,slots,0,2026-03-03T09:00:00,w405\n"
    )
    code, out = cli(
        "import", "file", str(report), "--provider", "acme", "--tz", "UTC", "--currency", "EUR"
    )
    assert code == 0 and "3 accepted" in out, out
    code, out = cli("settlement", "run", "--until-drained")
    assert code == 0, out
    assert cli("settlement", "close", "acme-std", "op1", "2026-02")[0] == 0
    code, out = cli("settlement", "orphans")
    assert code == 0, out
    # When it happened, for whom, the period it falls in and whether that period closed
    # (a narrow terminal shows each row as labelled lines: the labels may come between).
    assert re.search(
        _orphan_row(
            "acme:w404:*",
            "acme:rb1:rollback",
            "2026-02-02T10:05:00+00:00",
            "op1",
            "EUR",
            "acme-std",
            "2026-02",
            "yes",
        ),
        out,
    ), out
    assert re.search(
        _orphan_row(
            "acme:w405:*",
            "acme:rb2:rollback",
            "2026-03-03T09:00:00+00:00",
            "op1",
            "EUR",
            "acme-std",
            "2026-03",
            "no",
        ),
        out,
    ), out
    assert "2 waiting, 1 outlived its period's close" in out
    code, out = cli("settlement", "orphans", "--past-close")
    assert code == 0 and "acme:rb1:rollback" in out, out
    assert "acme:rb2:rollback" not in out


ORPHAN_COLUMNS = (
    "ref (original named)",
    "rollback",
    "occurred at",
    "operator",
    "currency",
    "contract",
    "period",
    "outlived close",
)


def _orphan_row(*values: str) -> str:
    """A pattern for one row of ``settlement orphans``, laid out across or down."""
    return r"\W+".join(
        rf"(?:{re.escape(label)}\W+)?{re.escape(value)}"
        for label, value in zip(ORPHAN_COLUMNS, values, strict=True)
    )
