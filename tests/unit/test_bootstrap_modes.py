"""The composition root picks the mode once: one factory of parts per mode."""

from __future__ import annotations

import ast
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
