"""Closing and acknowledging are declared on the ports, so callers never probe for them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tally.adapters.memory.events import MemoryEventLog
from tally.adapters.memory.ingest import MemoryImportProgress
from tally.adapters.memory.ledger import MemoryLedgerStore
from tally.adapters.memory.quarantine import MemoryInputQuarantine
from tally.adapters.memory.settlement import (
    MemoryConfigDocuments,
    MemoryEventSource,
    MemorySettlementStore,
)
from tally.adapters.memory.wallet import MemoryWalletMarks
from tally.events.ports import EventLog
from tally.ingest.files import ImportProgress
from tally.ledger.ports import LedgerStore
from tally.quarantine.inputs import InputQuarantine
from tally.settlement.ports import ConfigDocuments, EventSource, SettlementStore
from tally.settlement.service import NoEvents
from tally.settlement.source import LogSource
from tally.wallet.ports import WalletMarks

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tally"


@pytest.mark.parametrize(
    "port",
    [
        LedgerStore,
        EventLog,
        InputQuarantine,
        ImportProgress,
        WalletMarks,
        ConfigDocuments,
        SettlementStore,
    ],
)
def test_every_store_port_declares_close(port: type) -> None:
    assert callable(getattr(port, "close", None))


def test_the_event_source_port_declares_committed() -> None:
    assert callable(getattr(EventSource, "committed", None))


def test_the_memory_adapters_that_hold_nothing_close_and_acknowledge_as_no_ops() -> None:
    log = MemoryEventLog()
    ledger = MemoryLedgerStore()
    for part in (
        log,
        MemoryImportProgress(),
        MemoryInputQuarantine(),
        MemoryWalletMarks(),
        MemoryConfigDocuments(),
        MemorySettlementStore(ledger),
    ):
        part.close()
    for source in (LogSource(log), MemoryEventSource(), NoEvents()):
        source.committed(1)
        assert source.read(0, 10) == []


def test_no_module_probes_for_close_or_committed_with_getattr_or_hasattr() -> None:
    probes = sorted(
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "hasattr")
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and node.args[1].value in ("close", "committed")
    )
    assert probes == []
