"""The JetStream event log and settlement consumer across restarts of NATS and the worker.

These restart the machine's nats-server (the same command line .ci/run uses), and always
leave it running.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tally.adapters.nats.events import JetStreamEventLog, StreamNames
from tally.adapters.nats.source import ACK_WAIT_S, JetStreamSource
from tally.events.model import Event
from tally.events.ports import Appended
from tally.kernel.errors import StoreUnavailable
from tally.settlement.source import to_settlement
from tally.simulation.activity import generate
from tally.simulation.direct import to_events
from tally.simulation.world import build_world
from tests.conftest import NATS_URL, require_nats, stream_names
from tests.support.settlement import TestWorker

NATS_SERVER = "/usr/sbin/nats-server"
START_ARGS = ["-a", "127.0.0.1", "-p", "4222", "-js", "-sd", "/var/lib/nats-server"]
START_ARGS += ["-l", "/var/log/nats-server.log"]
START = datetime(2026, 3, 31, 0, 0, tzinfo=UTC)


def _answers(timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", 4222), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _daemon() -> str:
    daemon = shutil.which("start-stop-daemon")
    if daemon is None or not Path(NATS_SERVER).exists():
        pytest.skip("restarting NATS needs the local nats-server and start-stop-daemon")
    return daemon


def stop_nats() -> None:
    subprocess.run(
        [_daemon(), "--stop", "--oknodo", "--retry", "10", "--exec", NATS_SERVER],
        check=True,
        capture_output=True,
    )


def start_nats() -> None:
    subprocess.run(
        [
            _daemon(),
            "--start",
            "--oknodo",
            "--background",
            "--exec",
            NATS_SERVER,
            "--",
            *START_ARGS,
        ],
        check=True,
        capture_output=True,
    )
    assert _answers(30), "nats-server did not come back"


def restart_nats() -> None:
    """Stop the local nats-server and start it again with the same storage."""
    try:
        stop_nats()
    finally:
        start_nats()


@pytest.fixture
def names() -> Iterator[StreamNames]:
    require_nats()
    chosen = stream_names()
    yield chosen
    if _answers(30):
        log = JetStreamEventLog(NATS_URL, chosen)
        log.drop()
        log.close()


def world_events(count: int) -> tuple[object, list[Event]]:
    world = build_world(11, START, players=60)
    events = to_events(generate(world, minutes=600, rounds_per_minute=6), START)
    return world, events[:count]


def test_the_log_survives_a_nats_restart_without_loss_or_duplication(names: StreamNames) -> None:
    _, events = world_events(3_000)
    first, second = events[:1_500], events[1_500:]
    log = JetStreamEventLog(NATS_URL, names)
    try:
        assert all(r.outcome is Appended.ACCEPTED for r in log.append(first))
        restart_nats()
        # The client reconnects by itself; redeliveries of the first half come along.
        again = log.append(first[::7] + second + first[-3:])
        outcomes = [r.outcome for r in again]
        assert outcomes.count(Appended.ACCEPTED) == len(second)
        assert outcomes.count(Appended.DUPLICATE) == len(first[::7]) + 3
        stored = []
        position = 0
        while batch := log.read(position, 1_000):
            stored += batch
            position = batch[-1][0]
        assert [p for p, _ in stored] == list(range(1, len(events) + 1))
        assert [e.key for _, e in stored] == [e.key for e in events]
        assert log.head() == len(events)
    finally:
        log.close()


def test_settlement_on_jetstream_resumes_after_a_worker_stop_and_a_nats_restart(
    names: StreamNames, pg_schema: str
) -> None:
    world, events = world_events(4_000)
    log = JetStreamEventLog(NATS_URL, names)
    try:
        log.append(events)
    finally:
        log.close()

    def fresh(**kw: object) -> TestWorker:
        return TestWorker(
            world.contracts,  # type: ignore[attr-defined]
            agents=world.agents,  # type: ignore[attr-defined]
            placements=world.placements,  # type: ignore[attr-defined]
            rates=world.rates,  # type: ignore[attr-defined]
            batch_max_events=300,
            **kw,  # type: ignore[arg-type]
        )

    reference = fresh()
    reference.source.append([to_settlement(e) for e in events])
    reference.worker.drain()

    runner = fresh(pg_schema=pg_schema)
    source = JetStreamSource(NATS_URL, names, durable="settle-test")
    runner.worker.source = source
    try:
        for _ in range(5):
            assert runner.worker.step() > 0
    finally:
        source.close()
    restart_nats()
    # A new worker on the same store: it resumes from its committed position.
    worker = runner.restart()
    source = JetStreamSource(NATS_URL, names, durable="settle-test")
    worker.source = source
    try:
        while worker.position < len(events):
            worker.step()
    finally:
        source.close()
        runner.shutdown()
    assert worker.position == len(events)
    assert worker.book.figures.totals == reference.worker.book.figures.totals
    assert worker.book.figures.fee_accrued == reference.worker.book.figures.fee_accrued


def test_a_batch_whose_commit_failed_is_handed_out_again_at_once(names: StreamNames) -> None:
    _, events = world_events(120)
    log = JetStreamEventLog(NATS_URL, names)
    try:
        log.append(events)
    finally:
        log.close()
    source = JetStreamSource(NATS_URL, names, durable="retry-test")
    try:
        first = source.read(0, 50)
        # No committed(): the worker's transaction failed and it reads from 0 again.
        started = time.monotonic()
        again = source.read(0, 50)
        assert time.monotonic() - started < ACK_WAIT_S / 10
        assert [p for p, _ in again] == [p for p, _ in first] == list(range(1, 51))
        source.committed(50)
        rest = []
        while batch := source.read(50 + len(rest), 1_000):
            rest += batch
        assert [p for p, _ in rest] == list(range(51, 121))
    finally:
        source.close()


def test_a_new_source_resumes_after_the_committed_position_not_after_what_was_read(
    names: StreamNames,
) -> None:
    _, events = world_events(100)
    log = JetStreamEventLog(NATS_URL, names)
    try:
        log.append(events)
    finally:
        log.close()
    source = JetStreamSource(NATS_URL, names, durable="skip-test")
    try:
        source.read(0, 60)
        source.committed(40)  # 41..60 were read, not committed, when the worker stopped
    finally:
        source.close()
    # A new worker resumes from the committed position in its store: 40.
    source = JetStreamSource(NATS_URL, names, durable="skip-test")
    try:
        positions = []
        while batch := source.read(40 + len(positions), 25):
            positions += [p for p, _ in batch]
        assert positions == list(range(41, 101))
    finally:
        source.close()


def test_scaled_mode_builds_the_jetstream_log_and_source_on_the_configured_streams(
    names: StreamNames, tmp_path: Path
) -> None:
    from tally.app.bootstrap import build_event_log, build_event_source
    from tally.app.settings import Settings

    settings = Settings(
        mode="scaled",
        nats_url=NATS_URL,
        nats_stream=names.stream,
        nats_subjects=names.subjects,
        nats_conflicts=names.conflicts,
        sqlite_path=tmp_path / "unused.sqlite",
    )
    log = build_event_log(settings)
    try:
        assert isinstance(log, JetStreamEventLog)
        assert log.names == names
        _, events = world_events(10)
        log.append(events)
    finally:
        log.close()
    source = build_event_source(settings)
    try:
        assert isinstance(source, JetStreamSource)
        assert [p for p, _ in source.read(0, 100)] == list(range(1, 11))
    finally:
        source.close()
    assert not (tmp_path / "unused.sqlite").exists()


def test_embedded_mode_keeps_the_event_log_in_the_sqlite_file(tmp_path: Path) -> None:
    from tally.adapters.sqlite.events import SqliteEventLog
    from tally.app.bootstrap import build_event_log
    from tally.app.settings import Settings

    log = build_event_log(Settings(sqlite_path=tmp_path / "tally.sqlite"))
    try:
        assert isinstance(log, SqliteEventLog)
    finally:
        log.close()


def test_an_append_sent_while_nats_is_down_lands_once_when_it_returns(
    names: StreamNames,
) -> None:
    _, events = world_events(600)
    log = JetStreamEventLog(NATS_URL, names)
    try:
        log.append(events[:200])
        outcome: list[object] = []
        try:
            stop_nats()
            # The client buffers while it reconnects; the server answers once it is back.
            sender = threading.Thread(target=lambda: outcome.append(_try(log, events[200:400])))
            sender.start()
            time.sleep(0.5)
        finally:
            start_nats()
        sender.join()
        # Whatever the first answer was (acks or "unavailable"), retrying is safe.
        results = log.append(events[200:])
        again = [r.outcome for r in results[:200]]
        if isinstance(outcome[0], list):  # acknowledged once NATS was back
            assert again == [Appended.DUPLICATE] * 200
        else:  # given up on: some may have landed, none lands twice
            assert set(again) <= {Appended.DUPLICATE, Appended.ACCEPTED}
        assert [r.outcome for r in results[200:]] == [Appended.ACCEPTED] * 200
        stored = []
        while batch := log.read(len(stored), 1_000):
            stored += batch
        assert [p for p, _ in stored] == list(range(1, 601))
        assert [e.key for _, e in stored] == [e.key for e in events]
    finally:
        log.close()


def _try(log: JetStreamEventLog, events: list[Event]) -> object:
    try:
        return log.append(events)
    except StoreUnavailable as exc:
        return exc


def test_a_running_worker_rides_out_a_nats_restart_with_the_figures_of_one_run(
    names: StreamNames, pg_schema: str
) -> None:
    world, events = world_events(3_000)
    log = JetStreamEventLog(NATS_URL, names)
    try:
        log.append(events[:1_500])
    finally:
        log.close()

    def fresh(**kw: object) -> TestWorker:
        return TestWorker(
            world.contracts,  # type: ignore[attr-defined]
            agents=world.agents,  # type: ignore[attr-defined]
            placements=world.placements,  # type: ignore[attr-defined]
            rates=world.rates,  # type: ignore[attr-defined]
            batch_max_events=200,
            **kw,  # type: ignore[arg-type]
        )

    reference = fresh()
    reference.source.append([to_settlement(e) for e in events])
    reference.worker.drain()

    runner = fresh(pg_schema=pg_schema)
    source = JetStreamSource(NATS_URL, names, durable="ride-out")
    runner.worker.source = source
    runner.worker.start()
    try:
        restart_nats()
        log = JetStreamEventLog(NATS_URL, names)
        try:
            log.append(events[1_000:])  # the second half, with redeliveries of 500
        finally:
            log.close()
        deadline = time.monotonic() + 60
        while runner.worker.position < len(events) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        runner.worker.stop()
        source.close()
        runner.shutdown()
    assert runner.worker.position == len(events)
    assert runner.worker.book.figures.totals == reference.worker.book.figures.totals
    assert runner.worker.book.figures.fee_accrued == reference.worker.book.figures.fee_accrued
