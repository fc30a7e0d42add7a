"""The composition root picks the mode once: one factory of parts per mode."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

from tally.adapters.sqlite.events import SqliteEventLog
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.adapters.sqlite.quarantine import SqliteInputQuarantine
from tally.app import bootstrap
from tally.app.settings import Settings

BOOTSTRAP = Path(bootstrap.__file__)


def test_bootstrap_reads_the_mode_in_one_place_only() -> None:
    tree = ast.parse(BOOTSTRAP.read_text(encoding="utf-8"))
    reads = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "mode"
    ]
    assert len(reads) == 1


def test_embedded_parts_make_the_stores_of_the_one_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "tally.sqlite"
    parts = bootstrap.mode_parts(Settings(sqlite_path=path))
    store = parts.ledger_store()
    log = parts.event_log()
    inputs = parts.input_quarantine()
    try:
        assert isinstance(store, SqliteLedgerStore)
        assert isinstance(log, SqliteEventLog)
        assert isinstance(inputs, SqliteInputQuarantine)
        assert path.exists()
    finally:
        for part in (inputs, log, store):
            part.close()


def test_both_modes_give_the_same_parts() -> None:
    embedded = bootstrap.mode_parts(Settings(mode="embedded"))
    scaled = bootstrap.mode_parts(Settings(mode="scaled"))
    assert type(embedded) is type(scaled) is bootstrap.ModeParts
    assert embedded != scaled


def test_the_alert_sink_from_bootstrap_is_the_risk_service_on_the_modes_store(
    tmp_path: Path,
) -> None:
    from tally.adapters.sqlite.risk import SqliteAlertStore
    from tally.app.keys import Keys
    from tally.kernel.alerts import AlertSignal, AlertSink, Severity
    from tally.kernel.clock import FixedClock
    from tally.providers.registry import Registry
    from tally.risk.alerts import AlertService
    from tally.risk.ports import AlertFilter
    from tally.security.signing import new_private_key_pem

    clock = FixedClock(datetime(2026, 3, 2, tzinfo=UTC))
    settings = Settings(
        data_dir=tmp_path, sqlite_path=tmp_path / "t.sqlite", keys_dir=tmp_path / "k"
    )
    with bootstrap.build_app(settings, clock) as app:
        keys = Keys(b"A" * 32, b"P" * 32, b"S" * 32, new_private_key_pem())
        bo = bootstrap.build_backoffice(app, keys=keys)
        try:
            sink: AlertSink = bo.alerts
            assert isinstance(sink, AlertService) and isinstance(bo.risk.store, SqliteAlertStore)
            sink.signal(AlertSignal("t.k", "x", Severity.WARNING, "c", clock.now()))
            (found,) = bo.risk.store.alerts(AlertFilter())
            assert [r.entry.action for r in bo.store.iter_audit()][-1] == "alert.opened"
            assert found.kind == "t.k"
            gateway = bootstrap.backoffice_wallet_gateway(
                app, bo, Registry.each_protocol_as_itself()
            )
            try:
                assert gateway.gateway.suspended == bo.risk.switches.suspended
            finally:
                gateway.close()
        finally:
            bo.close()
