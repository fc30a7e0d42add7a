"""A wallet gateway process commits without gathering waits (ADR 0011) and checkpoints
behind its writers; nothing else changed."""

from __future__ import annotations

from dataclasses import replace

from tally.app.settings import Settings


def test_a_gateway_process_commits_without_waiting_and_keeps_every_other_setting() -> None:
    settings = Settings.from_env({"TALLY_DATA_DIR": "/srv/tally"})
    gateway = settings.for_gateway()
    assert gateway.ledger_limits.batch_max_wait_s == 0.0
    assert gateway.ledger_limits.history_index_lag == 1_024
    assert gateway.ledger_limits.checkpoint_behind_s == 0.2
    assert gateway.append_limits.batch_wait_s == 0.0
    # Other processes still gather.
    assert settings.ledger_limits.batch_max_wait_s > 0
    assert settings.append_limits.batch_wait_s > 0
    ledger = settings.ledger_limits
    assert ledger.history_index_lag > 1_024
    assert ledger.checkpoint_behind_s == 0.0
    assert (
        replace(
            gateway.ledger_limits,
            batch_max_wait_s=ledger.batch_max_wait_s,
            history_index_lag=ledger.history_index_lag,
            checkpoint_behind_s=ledger.checkpoint_behind_s,
        )
        == ledger
    )
    waited = settings.append_limits.batch_wait_s
    assert replace(gateway.append_limits, batch_wait_s=waited) == settings.append_limits
    same = replace(
        gateway, ledger_limits=settings.ledger_limits, append_limits=settings.append_limits
    )
    assert same == settings
