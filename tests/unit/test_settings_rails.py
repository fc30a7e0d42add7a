"""The external payout rails are turned on, and configured, from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tally.adapters.payouts.bank_file import BankFileRail
from tally.adapters.payouts.psp import PspRail
from tally.app.bootstrap import build_rails
from tally.app.settings import Settings
from tally.kernel.clock import SystemClock
from tally.kernel.errors import ConfigurationError

BANK = {
    "TALLY_BANK_FILE_DIR": "",
    "TALLY_BANK_DEBTOR_NAME": "Tally Operator Ltd",
    "TALLY_BANK_DEBTOR_IBAN": "DE89 3704 0044 0532 0130 00",
    "TALLY_BANK_DEBTOR_BIC": "cobadeffxxx",
}


def test_no_external_rail_by_default() -> None:
    settings = Settings.from_env({})
    assert not settings.rails.bank_file_on and not settings.rails.psp_on
    assert build_rails(settings, SystemClock()) == {}


def test_both_rails_from_the_environment(tmp_path: Path) -> None:
    env = {
        **BANK,
        "TALLY_BANK_FILE_DIR": str(tmp_path / "bank"),
        "TALLY_BANK_CURRENCIES": "eur, chf",
        "TALLY_PSP_URL": "http://127.0.0.1:9/",
        "TALLY_PSP_WEBHOOK_SECRET": "whsec",
        "TALLY_PSP_CURRENCIES": "GBP",
    }
    settings = Settings.from_env(env)
    assert settings.rails.bank_debtor_iban == "DE89370400440532013000"
    assert settings.rails.bank_debtor_bic == "COBADEFFXXX"
    assert settings.rails.bank_currencies == ("EUR", "CHF")
    assert "whsec" not in repr(settings)
    rails = build_rails(settings, SystemClock())
    assert sorted(rails) == ["bank-file", "psp"]
    bank, psp = rails["bank-file"], rails["psp"]
    assert isinstance(bank, BankFileRail) and isinstance(psp, PspRail)
    assert bank.supports("CHF") and not bank.supports("GBP")
    assert psp.supports("GBP") and not psp.supports("EUR")
    psp.close()


def test_the_webhook_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    env = {"TALLY_PSP_URL": "https://psp.example/", "TALLY_PSP_WEBHOOK_SECRET_FILE": str(secret)}
    assert Settings.from_env(env).rails.psp_webhook_secret == "from-a-file"


@pytest.mark.parametrize(
    "env",
    [
        {"TALLY_PSP_URL": "http://127.0.0.1:9/"},  # no webhook secret: nothing to verify with
        {"TALLY_PSP_URL": "ftp://x", "TALLY_PSP_WEBHOOK_SECRET": "s"},
        {"TALLY_PSP_URL": "http://x", "TALLY_PSP_WEBHOOK_SECRET": "s", "TALLY_PSP_CURRENCIES": "E"},
        {**BANK, "TALLY_BANK_FILE_DIR": "/tmp/x", "TALLY_BANK_DEBTOR_BIC": ""},
        {"TALLY_PSP_WEBHOOK_SECRET": "a", "TALLY_PSP_WEBHOOK_SECRET_FILE": "/x"},
    ],
)
def test_incomplete_or_wrong_rail_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env(env)
