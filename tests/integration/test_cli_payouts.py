"""`tally payouts` on the demo's data: the periods the demo closed leave fees and
commissions owed; finance registers the counterparties, builds a run, the worker pays it
through the internal rail, and the positions show it paid."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.app.bootstrap import build_app, build_backoffice
from tally.app.payouts import SettlementPayables
from tally.app.settings import Settings
from tally.entrypoints.cli import app
from tally.ledger.model import Account, OwnerKind
from tally.payouts.model import PayoutState


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
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
        yield directory


def _tally(directory: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.chdir(directory)
    env = {"TALLY_SQLITE_PATH": "data/demo.sqlite", "TALLY_DATA_DIR": "data", "COLUMNS": "200"}
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_the_demo_s_closed_periods_are_paid_from_the_command_line(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(sqlite_path=demo / "data" / "demo.sqlite", data_dir=demo / "data")
    with build_app(settings) as tally:
        owed = SettlementPayables(tally.settlement_store, tally.settlement_config, tally.clock)
        payables = owed.payables()
        parties = sorted({p.counterparty for p in payables})
        wallets = [
            Account(
                f"{cp}:wallet:{cur}", OwnerKind(cp.split(":")[0]), cp.split(":")[1], cur, "wallet"
            )
            for cp in parties
            for cur in sorted({p.currency for p in payables if p.counterparty == cp})
        ]
        tally.ledger.create_accounts(wallets)
    assert payables, "the demo closed no period with a fee or a commission"
    code, out = _tally(demo, monkeypatch, "payouts", "build")
    assert code == 2 and "unknown_counterparty" in out  # nobody registered yet: refused whole
    for cp in parties:
        kind, party = cp.split(":")
        currency = next(p.currency for p in payables if p.counterparty == cp)
        code, out = _tally(
            demo, monkeypatch, "payouts", "counterparty", kind, party, "--name", party,
            "--rail", "internal", "--account", f"{cp}:wallet:{currency}",
        )  # fmt: skip
        assert code == 0, out
    code, out = _tally(demo, monkeypatch, "payouts", "build")
    assert code == 0, out
    found = re.search(r"^run (run-\S+) ", out, flags=re.MULTILINE)
    assert found, out
    run_id = found.group(1)
    accounts = sorted({p.account_id for p in payables})
    with build_app(settings) as tally:
        before = tally.ledger.balances(accounts)
    code, out = _tally(demo, monkeypatch, "payouts", "work")
    assert code == 0 and "payout steps taken" in out, out
    code, out = _tally(demo, monkeypatch, "payouts", "show", run_id)
    assert code == 0 and "confirmed" in out and "reserved" not in out, out
    code, out = _tally(demo, monkeypatch, "payouts", "list")
    assert code == 0 and run_id in out
    code, out = _tally(demo, monkeypatch, "payouts", "positions")
    assert code == 0 and parties[0] in out
    with build_app(settings) as tally:
        backoffice = build_backoffice(tally)
        try:
            payouts = backoffice.payouts.payouts_of_run(run_id)
            after = tally.ledger.balances(accounts)
        finally:
            backoffice.close()
    assert payouts
    for payout in payouts:
        if payout.account.endswith(f":{payout.currency}"):
            assert payout.state is PayoutState.CONFIRMED, payout
        else:  # one wallet was registered, in another currency: the rail refused, voided
            assert (payout.state, payout.reason) == (
                PayoutState.FAILED,
                "accounts_must_have_the_same_currency",
            )
    paid: dict[str, int] = {}
    for payout in (p for p in payouts if p.state is PayoutState.CONFIRMED):
        for leg in payout.legs:
            paid[leg.account_id] = paid.get(leg.account_id, 0) + leg.amount
    # Each payable account went down by exactly what was paid from it, once (what settles
    # in the open periods meanwhile accrues beside it: the demo's worker has stopped).
    for account in accounts:
        assert after[account].net_credit == before[account].net_credit - paid.get(account, 0)
