"""PostgreSQL: connections the server drops (a restart, a failover, a terminated backend)
are opened again; the ledger's batches under way are retried on them, and nothing is lost
or written twice. The test ends every backend of its stores with ``pg_terminate_backend``,
which is what a server restart does to them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import psycopg
import pytest

from tally.adapters.postgres.backoffice import PostgresBackofficeStore
from tally.adapters.postgres.ledger import PostgresLedgerStore
from tally.adapters.postgres.ledger_read import PostgresTransferSource
from tally.adapters.postgres.quarantine import PostgresIngestStore
from tally.adapters.postgres.settlement import PostgresConfigDocuments, PostgresSettlementStore
from tally.adapters.postgres.wallet import PostgresWalletMarks
from tally.audit.chain import Sealer
from tally.kernel.clock import FixedClock
from tally.ledger.model import ResultCode
from tally.ledger.service import LedgerService
from tally.quarantine.inputs import Reason, Refused
from tests.conftest import PG_DSN, START
from tests.support.pipeline import HOUSE, WALLET, move, posted


@pytest.fixture
def app_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every connection the test's stores open carries this name (libpq's PGAPPNAME)."""
    name = f"tally-reconnect-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PGAPPNAME", name)
    return name


def drop_connections(app_name: str) -> int:
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        (ended,) = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (app_name,),
        ).fetchone() or (0,)
    return int(ended)


def test_the_ledger_commits_on_after_its_connections_are_dropped(
    pg_schema: str, app_name: str
) -> None:
    store = PostgresLedgerStore(PG_DSN, schema=pg_schema)
    try:
        with LedgerService(store, FixedClock(START)) as ledger:
            ledger.create_accounts([WALLET, *HOUSE])
            (fund,) = ledger.transfer([move("fund", "h0", "w", 1_000)])
            assert fund.code is ResultCode.OK
            # Both commit lanes, the deciding connection and the pooled reads.
            assert drop_connections(app_name) >= 4
            assert posted(store, "w") == (0, 1_000)  # a read runs again on a new one
            # Each batch after it: its first attempt meets a dropped connection.
            for i in range(1, 6):
                (bet,) = ledger.transfer([move(f"bet-{i}", "w", f"h{i}", 10 * i)])
                assert bet.code is ResultCode.OK, bet
            assert posted(store, "w") == (150, 1_000)
            assert drop_connections(app_name) >= 1
            (again,) = ledger.transfer([move("bet-1", "w", "h1", 10)])
            assert again.code is ResultCode.EXISTS  # written once, found once
            assert posted(store, "w") == (150, 1_000)
            assert store.balance("h5") is not None
    finally:
        store.close()


def test_each_store_works_again_on_the_call_after_a_dropped_connection(
    pg_schema: str, app_name: str
) -> None:
    ledger = PostgresLedgerStore(PG_DSN, schema=pg_schema)
    marks = PostgresWalletMarks(PG_DSN, schema=pg_schema)
    ingest = PostgresIngestStore(PG_DSN, schema=pg_schema)
    backoffice = PostgresBackofficeStore(PG_DSN, Sealer(b"k" * 32), schema=pg_schema)
    documents = PostgresConfigDocuments(PG_DSN, schema=pg_schema)
    settlement = PostgresSettlementStore(ledger, PG_DSN, schema=pg_schema)
    transfers = PostgresTransferSource(PG_DSN, schema=pg_schema)
    refused = Refused("callback", "acme", Reason.MALFORMED, "bad", "{", START)
    calls: dict[str, Callable[[], object]] = {
        "wallet marks": lambda: marks.marked(["acme:tx-1"]),
        "input quarantine": lambda: ingest.put(refused),
        "back office": backoffice.ping,
        "settlement documents": documents.revision,
        "settlement state": settlement.load_figures,
        "transfer source": lambda: transfers.transfers_recorded_between(
            START, START + timedelta(days=1)
        ),
    }
    try:
        for call in calls.values():
            call()
        assert drop_connections(app_name) >= len(calls)
        failed_once = []
        for name, call in calls.items():
            try:
                call()
            except Exception:  # noqa: BLE001 - the call the dropped connection fails
                failed_once.append(name)
                call()  # the next one opens a new connection
        assert failed_once == list(calls)
        assert marks.marked(["acme:tx-1"]) == {}
    finally:
        for store in (marks, ingest, backoffice, documents, settlement, transfers, ledger):
            store.close()
