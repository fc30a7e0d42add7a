"""A wallet gateway process runs with its own ledger wait (ADR 0011), nothing else changed."""

from __future__ import annotations

from dataclasses import replace

from tally.app.settings import Settings


def test_a_gateway_process_commits_without_waiting_and_keeps_every_other_setting() -> None:
    settings = Settings.from_env({"TALLY_DATA_DIR": "/srv/tally"})
    gateway = settings.for_gateway()
    assert gateway.ledger_limits.batch_max_wait_s == 0.0
    assert settings.ledger_limits.batch_max_wait_s > 0  # other processes still gather
    waited = settings.ledger_limits.batch_max_wait_s
    assert replace(gateway.ledger_limits, batch_max_wait_s=waited) == settings.ledger_limits
    assert replace(gateway, ledger_limits=settings.ledger_limits) == settings
