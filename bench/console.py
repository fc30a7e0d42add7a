"""The console's pages, server-side: how long each page takes to render over a store holding
N transfers (embedded, SQLite), p50/p95/max, and what one live-feed snapshot costs.

Requests go through the ASGI application in-process (starlette's TestClient): the time is
the server's (routing, auth, the stores' reads, rendering), without a network between.
"""

from __future__ import annotations

import json
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
    consoles: int = 50  # live feeds open at once
    seconds: float = 10.0  # how long they stay open


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


# Opens N live feeds (each an EventSource would) with one cookie, reads them for S seconds
# and prints how many messages each got: run in a child process, so that the clients'
# work is not the server's.
LISTENER = """
import json, sys, threading, time, httpx
url, cookie, n, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
counts = [0] * n
def listen(i):
    end = time.monotonic() + seconds
    with httpx.Client(cookies={"tally_console": cookie}, timeout=seconds + 10) as c:
        while time.monotonic() < end:
            with c.stream("GET", url) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        counts[i] += 1
                    if time.monotonic() >= end:
                        break
threads = [threading.Thread(target=listen, args=(i,)) for i in range(n)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(counts))
"""


def _latencies(url: str, requests: int) -> list[float]:
    import httpx

    times = []
    with httpx.Client() as client:
        for _ in range(requests):
            t0 = time.perf_counter()
            assert client.get(url).status_code == 200
            times.append((time.perf_counter() - t0) * 1000)
    return times


def live_load(api: Any, cookie: str, consoles: int, seconds: float) -> dict[str, Any]:
    """The API's latency (GET /health and a ledger read, over HTTP) with no console open,
    then with ``consoles`` live feeds open on the same process."""
    import socket
    import subprocess
    import sys
    import threading

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    probe = f"{base}/health"
    try:
        alone = _latencies(probe, 300)
        child = subprocess.Popen(
            [sys.executable, "-c", LISTENER, f"{base}/console/live", cookie, str(consoles),
             str(seconds)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.0)  # the feeds open
        beside = []
        ends = time.monotonic() + seconds - 2.0
        while time.monotonic() < ends:
            beside += _latencies(probe, 50)
        out, _ = child.communicate(timeout=seconds + 30)
        counts = json.loads(out)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return {
        "consoles": consoles,
        "seconds": seconds,
        "messages_min_per_console": min(counts),
        "consoles_fed": sum(1 for c in counts if c > 0),
        "alone_ms": {"p50": percentile(alone, 0.5), "p99": percentile(alone, 0.99)},
        "beside_ms": {"p50": percentile(beside, 0.5), "p99": percentile(beside, 0.99)},
    }


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
        # Figures that change while the consoles watch: each console's feed sends them.
        live = live_load(api, client.cookies["tally_console"], config.consoles, config.seconds)
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
            "live_consoles": live,
            "worst_p95_ms": worst,
            "rss_mb": rss_mb(),
            "targets": {"p95_ms": TARGET_P95_MS, "met_p95_ms": worst < TARGET_P95_MS},
        }
        bo.close()
        tally.close()
    return results
