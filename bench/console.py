"""The console's pages, server-side: how long each page takes to render over a store holding
N transfers (embedded, SQLite), p50/p95/max, and what one live-feed snapshot costs.

Requests go through the ASGI application in-process (starlette's TestClient): the time is
the server's (routing, auth, the stores' reads, rendering), without a network between.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import percentile, rss_mb

TARGET_P95_MS = 300.0
ACCOUNTS = 2_000
CHUNK = 5_000
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Config:
    transfers: int = 1_000_000
    requests: int = 40  # per page, after warm-up
    settlement_events: int = 20_000


def _load(tally: Any, transfers: int) -> tuple[str, str]:
    """``transfers`` among ACCOUNTS partner accounts; returns the busiest account and a
    transfer id in the middle of its history."""
    from tally.ledger.model import Account, OwnerKind, TransferRequest

    accounts = [Account("platform:cash:EUR", OwnerKind.PLATFORM, "platform", "EUR", "cash")]
    accounts += [
        Account(f"partner:a{i:05d}:commission:EUR", OwnerKind.PARTNER, f"a{i:05d}", "EUR",
                "commission")
        for i in range(ACCOUNTS)
    ]  # fmt: skip
    tally.ledger.create_accounts(accounts)
    hot = accounts[1].id
    done = 0
    while done < transfers:
        size = min(CHUNK, transfers - done)
        batch = [
            TransferRequest(
                f"t{done + i:09d}",
                "platform:cash:EUR",
                hot if (done + i) % 100 == 0 else accounts[1 + (done + i) % ACCOUNTS].id,
                1 + (done + i) % 997,
                "EUR",
                "commission",
            )
            for i in range(size)
        ]
        results = tally.ledger.transfer(batch)
        assert all(r.code.ok for r in results)
        done += size
    middle = f"t{(transfers // 2) // 100 * 100:09d}"
    return hot, middle


def _settle(tally: Any, events: int, clock: Any) -> None:
    """Open-period figures across providers, operators, regions and game types."""
    from tally.adapters.memory.backoffice import scratch_auditing
    from tally.adapters.memory.settlement import MemoryEventSource
    from tally.events.model import EventKind
    from tally.settlement.contracts import ContractTerms, flat
    from tally.settlement.engine import SettlementEvent
    from tally.settlement.service import SettlementWorker

    by = scratch_auditing("system:bench", "bench")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for p in range(5):
        tally.settlement_config.put_contract(
            ContractTerms(f"prov{p}-std", 1, f"prov{p}", start, "EUR", {"*": flat("0.10")}),
            clock.now(),
            by=by,
        )
    source = MemoryEventSource()
    worker = SettlementWorker(
        source, tally.settlement_store, tally.settlement_config, clock, consumer="bench", by=by
    )
    at = datetime(2026, 4, 10, tzinfo=UTC)
    batch = [
        SettlementEvent(
            f"prov{n % 5}:e{n}:{'bet' if n % 3 else 'win'}",
            EventKind.BET if n % 3 else EventKind.WIN,
            "prov" + str(n % 5),
            f"op{n % 7}",
            f"p{n % 500}",
            ("slots", "live", "crash", "table")[n % 4],
            100 + n % 1000,
            "EUR",
            at + timedelta(seconds=n),
            region=("eu", "uk", "br", "jp")[n % 4],
        )
        for n in range(events)
    ]
    source.append(batch)
    worker.drain()


def run(config: Config) -> dict[str, Any]:
    import warnings

    with warnings.catch_warnings():
        # starlette asks for httpx2 on import; httpx is what the project ships (pyproject).
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from tally.app.bootstrap import build_app, build_backoffice
    from tally.app.keys import Keys
    from tally.app.settings import Settings
    from tally.auth.policy import Role
    from tally.entrypoints.api.app import create_api
    from tally.entrypoints.console import overview as ov
    from tally.entrypoints.console.security import CSRF_FIELD
    from tally.kernel.clock import FixedClock
    from tally.security.passwords import PasswordHasher
    from tally.security.signing import new_private_key_pem

    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        folder = Path(tmp)
        clock = FixedClock(datetime(2026, 4, 15, 12, tzinfo=UTC))
        settings = Settings(
            mode="embedded", data_dir=folder, sqlite_path=folder / "tally.sqlite",
            keys_dir=folder / "keys",
        )  # fmt: skip
        keys = Keys(b"A" * 32, b"P" * 32, b"S" * 32, new_private_key_pem())
        tally = build_app(settings, clock).start()
        bo = build_backoffice(
            tally, keys=keys, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        )
        started = time.perf_counter()
        hot, middle = _load(tally, config.transfers)
        load_s = time.perf_counter() - started
        _settle(tally, config.settlement_events, clock)
        bo.auth.create_user("system:bench", "auditor", PASSWORD, frozenset({Role.AUDITOR}))
        api = create_api(tally, bo)
        client = TestClient(api)
        form = client.get("/console/login").text
        token = form.split(f'name="{CSRF_FIELD}" value="', 1)[1].split('"', 1)[0]
        logged = client.post(
            "/console/login",
            data={"csrf": token, "username": "auditor", "password": PASSWORD},
            follow_redirects=False,
        )
        assert logged.status_code == 303, logged.text
        first = client.get(f"/console/ledger?account={hot}").text
        cursor = first.split("cursor=", 1)[1].split('"', 1)[0] if "cursor=" in first else ""
        pages = {
            "overview": "/console/",
            "ledger account": f"/console/ledger?account={hot}",
            "ledger page 2": f"/console/ledger?account={hot}&cursor={cursor}",
            "ledger at instant": f"/console/ledger?account={hot}&at=2026-04-15T12:00:00%2B00:00",
            "transfer": f"/console/ledger/transfers/{middle}",
            "owner accounts": "/console/ledger?owner=partner:a00001",
            "settlement": "/console/settlement",
            "quarantine": "/console/quarantine",
            "reconciliation": "/console/reconciliation",
            "audit": "/console/audit",
            "admin": "/console/admin",
        }
        figures: dict[str, dict[str, float]] = {}
        for name, url in pages.items():
            for _ in range(3):  # warm-up
                assert client.get(url).status_code == 200, url
            times = []
            for _ in range(config.requests):
                t0 = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, url
            figures[name] = {
                "p50_ms": percentile(times, 0.50),
                "p95_ms": percentile(times, 0.95),
                "max_ms": max(times),
            }
        principal = bo.auth.authenticate(client.cookies["tally_console"])
        assert principal is not None
        ctx = api.state.ctx
        snaps = []
        for _ in range(config.requests):
            t0 = time.perf_counter()
            ov.build(ctx, principal).live()
            snaps.append((time.perf_counter() - t0) * 1000)
        client.close()
        worst = max(f["p95_ms"] for f in figures.values())
        results = {
            "benchmark": "console",
            "transfers": config.transfers,
            "settlement_events": config.settlement_events,
            "load_s": load_s,
            "pages": figures,
            "live_snapshot_ms": {
                "p50": percentile(snaps, 0.5),
                "p95": percentile(snaps, 0.95),
            },
            "worst_p95_ms": worst,
            "rss_mb": rss_mb(),
            "targets": {"p95_ms": TARGET_P95_MS, "met_p95_ms": worst < TARGET_P95_MS},
        }
        bo.close()
        tally.close()
    return results
