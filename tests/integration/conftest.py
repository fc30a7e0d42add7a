"""A running back-office API over an embedded (SQLite) Tally, with one user per role."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tally.app.bootstrap import App, build_app, build_backoffice, build_ingest
from tally.app.metrics import Metrics
from tally.app.settings import Settings
from tally.audit.chain import Sealer
from tally.auth.policy import Role
from tally.entrypoints.api.app import create_api
from tally.kernel.clock import FixedClock
from tally.ledger.service import LedgerService
from tally.settlement.config import SettlementConfig
from tests.integration.apiworld import (
    CHEAP_HASHER,
    OPERATOR_OP1,
    PARTNER_A,
    PARTNER_B,
    PASSWORD,
    PROVIDER_ACME,
    STAFF,
    World,
    enrol,
    fixed_keys,
    seed_ledger,
)

PG_DSN = os.environ.get("TALLY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _postgres(request: pytest.FixtureRequest, clock: FixedClock, metrics: Metrics) -> App:
    """The scaled mode's stores, each in the test's own PostgreSQL schema."""
    from tally.adapters.postgres.ledger import PostgresLedgerStore
    from tally.adapters.postgres.settlement import (
        PostgresConfigDocuments,
        PostgresSettlementStore,
    )

    schema = request.getfixturevalue("pg_schema")
    store = PostgresLedgerStore(PG_DSN, schema=schema)
    ledger = LedgerService(store, clock, on_commit=metrics.observe_commit)
    documents = PostgresConfigDocuments(PG_DSN, schema=schema)
    return App(
        settings=Settings(mode="scaled"),
        clock=clock,
        ledger_store=store,
        ledger=ledger,
        settlement_documents=documents,
        settlement_config=SettlementConfig(documents),
        settlement_store=PostgresSettlementStore(store, PG_DSN, schema=schema),
    )


@pytest.fixture(params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock) -> Iterator[World]:
    """The same API tests run over the embedded (SQLite) and the scaled (PostgreSQL) stores."""
    metrics = Metrics()
    keys = fixed_keys()
    if request.param == "sqlite":
        settings = Settings(
            mode="embedded",
            data_dir=tmp_path,
            sqlite_path=tmp_path / "tally.sqlite",
            keys_dir=tmp_path / "keys",
        )
        app = build_app(settings, clock, on_commit=metrics.observe_commit)
        bo = build_backoffice(app, metrics=metrics, hasher=CHEAP_HASHER, keys=keys)
    else:
        from tally.adapters.nats.events import JetStreamEventLog
        from tally.adapters.postgres.backoffice import PostgresBackofficeStore
        from tally.adapters.postgres.ledger_read import PostgresTransferSource
        from tally.adapters.postgres.payouts import PostgresPayoutStore
        from tally.adapters.postgres.quarantine import (
            PostgresImportProgress,
            PostgresInputQuarantine,
        )
        from tally.adapters.postgres.reconciliation import PostgresReconciliationStore
        from tally.adapters.postgres.risk import PostgresAlertStore
        from tests.conftest import NATS_URL, stream_names

        app = _postgres(request, clock, metrics)
        schema = request.getfixturevalue("pg_schema")
        store = PostgresBackofficeStore(PG_DSN, Sealer(keys.audit), schema=schema)
        names = stream_names()
        jetstream = JetStreamEventLog(NATS_URL, names)

        def drop_streams() -> None:
            cleaner = JetStreamEventLog(NATS_URL, names)
            cleaner.drop()
            cleaner.close()

        request.addfinalizer(drop_streams)
        bo = build_backoffice(
            app,
            metrics=metrics,
            hasher=CHEAP_HASHER,
            keys=keys,
            store=store,
            transfer_source=PostgresTransferSource(PG_DSN, schema=schema),
            ingest=build_ingest(
                app.settings,
                clock,
                store,
                log=jetstream,
                inputs=PostgresInputQuarantine(PG_DSN, schema=schema),
                progress=PostgresImportProgress(PG_DSN, schema=schema),
            ),
            reconciliation_store=lambda: PostgresReconciliationStore(PG_DSN, schema=schema),
            payout_store=lambda: PostgresPayoutStore(
                app.ledger_store,
                PG_DSN,
                schema=schema,  # type: ignore[arg-type]
            ),
            risk_store=lambda: PostgresAlertStore(PG_DSN, schema=schema),
        )
    app.start()
    api = create_api(app, bo)
    if request.param == "postgres":
        from tally.adapters.postgres.risk_watch import PostgresRiskStore

        # The risk router opens its store once per API process: here, in the test's schema.
        api.state.risk_store = PostgresRiskStore(
            PG_DSN, schema=request.getfixturevalue("pg_schema")
        )
    with TestClient(api, client=("203.0.113.9", 5000)) as client:
        w = World(app, bo, client, clock)
        for role in STAFF:
            user = bo.auth.create_user("system", role.value, PASSWORD, frozenset({role}))
            w.user_ids[role.value] = user.id
        for name, owner in (("partner", PARTNER_A), ("partner_b", PARTNER_B)):
            user = bo.auth.create_user(
                "system", name, PASSWORD, frozenset({Role.PARTNER}), scope=frozenset({owner})
            )
            w.user_ids[name] = user.id
        for role in (Role.ADMIN, Role.FINANCE):
            enrol(w, role.value)
        for name in (*[r.value for r in STAFF], "partner", "partner_b"):
            w.tokens[name] = w.login(name)
        _, ops_token = bo.auth.create_api_key("system", "ops bot", frozenset({Role.OPERATIONS}))
        _, partner_token = bo.auth.create_api_key(
            "system", "partner a feed", frozenset({Role.PARTNER}), scope=frozenset({PARTNER_A})
        )
        _, feed_token = bo.auth.create_api_key(
            "system",
            "op1 feed and acme reports",
            frozenset({Role.FEED}),
            scope=frozenset({OPERATOR_OP1, PROVIDER_ACME}),
        )
        w.tokens["key_ops"] = ops_token
        w.tokens["key_partner"] = partner_token
        w.tokens["key_feed"] = feed_token
        seed_ledger(app)
        yield w
    risk_store = getattr(api.state, "risk_store", None)
    if risk_store is not None:
        risk_store.close()
    app.close()
    bo.close()
