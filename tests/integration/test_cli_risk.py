"""``tally risk``: game figures refused when saved, the watch over the embedded log,
forecasts once it has series."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.entrypoints.cli import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, " ".join(result.output.split())

    return run


def test_a_certified_rtp_outside_zero_to_one_is_refused_and_a_good_one_kept(cli) -> None:  # type: ignore[no-untyped-def]
    code, out = cli("risk", "games", "set", "g1", "--rtp", "1.2", "--volatility", "2")
    assert code == 2 and "in (0, 1]" in out
    code, out = cli("risk", "games", "set", "g1", "--rtp", "abc", "--volatility", "2")
    assert code == 2 and "refused" in out
    code, _ = cli(
        "risk", "games", "set", "g1", "--rtp", "0.96", "--volatility", "2.1", "--max-win", "500"
    )
    assert code == 0
    code, out = cli("risk", "games", "list")
    assert code == 0 and "│ g1 │ 0.96 │ 2.1 │ 500 │" in out


def test_the_watch_drains_the_log_and_remembers_where_it_stopped(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tally.app.bootstrap import build_event_log
    from tally.app.settings import Settings
    from tally.simulation.incidents import stream
    from tally.simulation.riskwatch import to_event
    from tally.simulation.world import build_world

    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    world = build_world(3, start, players=50)
    log = build_event_log(Settings.from_env())
    events = [to_event(r) for r in stream(world, minutes=90, rounds_per_minute=20, seed=3)]
    log.append(events)
    log.close()
    code, out = cli("risk", "watch")
    assert code == 0 and f"watched {len(events):,} events" in out
    code, out = cli("risk", "watch")
    assert code == 0 and "watched 0 events" in out
    # Ninety minutes of series are too short to forecast (two days are needed).
    code, out = cli("risk", "forecast", "--metric", "bets")
    assert code == 0 and "refit: 0 hourly points" in out
