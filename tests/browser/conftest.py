"""The console in a real browser: Playwright drives Debian's chromium against `tally serve`'s
application running in a thread on an embedded (SQLite) Tally with real settlement data.

Playwright cannot download its own browsers here, so the tier uses the system's chromium
(TALLY_TEST_CHROMIUM, default /usr/bin/chromium). Without it the tier skips with a clear
message; under CI=true it fails, as the PostgreSQL tier does (.ci/run installs it).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tally.adapters.memory.backoffice import scratch_auditing
from tally.adapters.memory.settlement import MemoryEventSource
from tally.app.bootstrap import App, Backoffice, build_app, build_backoffice
from tally.app.metrics import Metrics
from tally.app.settings import Settings
from tally.auth.model import OwnerRef
from tally.auth.policy import Role
from tally.entrypoints.api.app import create_api
from tally.events.model import EventKind
from tally.kernel.clock import FixedClock
from tally.ledger.model import OwnerKind
from tally.security import totp
from tally.settlement.contracts import ContractTerms, flat
from tally.settlement.engine import SettlementEvent
from tally.settlement.service import SettlementWorker
from tests.conftest import IN_CI
from tests.integration.apiworld import CHEAP_HASHER, PASSWORD, fixed_keys, seed_tree

CHROMIUM = os.environ.get("TALLY_TEST_CHROMIUM", "/usr/bin/chromium")
# The world's "now": mid-April, so March has ended (it may be closed) and April is open.
NOW = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)
MAR = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
APR = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
ROLES = ("admin", "finance", "operations", "auditor", "partner")


def require_chromium() -> None:
    if os.access(CHROMIUM, os.X_OK):
        return
    message = f"no chromium at {CHROMIUM} (set TALLY_TEST_CHROMIUM)"
    if IN_CI:
        pytest.fail(f"{message}; the browser tests are mandatory under CI=true", pytrace=False)
    pytest.skip(
        f"{message}; install it (apt-get install chromium) to run the console's browser tests"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module, and Playwright stopped after it.

    pytest-playwright's own ``browser`` rests on a session-wide Playwright whose event loop
    stays current in the main thread until the session ends: every later test that calls
    ``asyncio.run`` (the gateway's, the feeds') would fail. So the plugin's fixtures are
    replaced here (same names) by ones that end with the module."""
    require_chromium()
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def contract(contract_id: str = "acme-std", provider: str = "acme") -> ContractTerms:
    return ContractTerms(
        contract_id=contract_id,
        version=1,
        provider=provider,
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
        settlement_currency="EUR",
        rates={"*": flat("0.10")},
    )


def event(key: str, kind: EventKind, amount: int, at: datetime, **kw: str) -> SettlementEvent:
    fields: dict[str, Any] = {
        "provider": "acme",
        "operator": "op1",
        "player": "p1",
        "game_type": "slots",
        "currency": "EUR",
        "region": "eu",
        "agent": "pa-sub",
    }
    fields.update(kw)
    return SettlementEvent(key, kind, amount=amount, occurred_at=at, **fields)


@dataclass
class ConsoleWorld:
    app: App
    bo: Backoffice
    clock: FixedClock
    url: str
    source: MemoryEventSource
    worker: SettlementWorker
    totp_secrets: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: int = 0

    def code(self, name: str) -> str | None:
        """A fresh TOTP code for ``name`` (codes are single-use: a new step each time)."""
        with self._lock:
            self.clock.advance(timedelta(seconds=31))
            secret = self.totp_secrets.get(name)
            return totp.code_at(secret, self.clock.now()) if secret else None

    def api_token(self, name: str) -> str:
        body: dict[str, Any] = {"username": name, "password": PASSWORD}
        code = self.code(name)
        if code:
            body["totp_code"] = code
        response = httpx.post(f"{self.url}/v1/auth/login", json=body)
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def api(self, token: str, path: str, **params: Any) -> Any:
        response = httpx.get(
            f"{self.url}{path}", params=params, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        return response.json()

    def feed(self, events: list[SettlementEvent]) -> None:
        """New events through the real settlement worker (its figures land in the store)."""
        self.source.append(events)
        self.worker.drain()

    def bet_and_win(self, bet: int, win: int, at: datetime = APR, **kw: str) -> None:
        with self._lock:
            self._seq += 1
            n = self._seq
        self.feed(
            [
                event(f"acme:b{n}:bet", EventKind.BET, bet, at, **kw),
                event(f"acme:w{n}:win", EventKind.WIN, win, at, **kw),
            ]
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _enrol(bo: Backoffice, clock: FixedClock, name: str) -> str:
    result = bo.auth.login(name, PASSWORD)
    principal = bo.auth.authenticate(result.token)
    assert principal is not None
    secret = bo.auth.begin_enrolment(principal).secret
    bo.auth.confirm_enrolment(principal, totp.code_at(secret, clock.now()))
    clock.advance(timedelta(seconds=31))
    return secret


@pytest.fixture(scope="module")
def console_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleWorld]:
    tmp: Path = tmp_path_factory.mktemp("console")
    clock = FixedClock(NOW)
    settings = Settings(
        mode="embedded", data_dir=tmp, sqlite_path=tmp / "tally.sqlite", keys_dir=tmp / "keys"
    )
    metrics = Metrics()
    app = build_app(settings, clock, on_commit=metrics.observe_commit)
    bo = build_backoffice(app, metrics=metrics, hasher=CHEAP_HASHER, keys=fixed_keys())
    app.start()
    by = scratch_auditing("system:test", "test")
    seed_tree(app)
    app.settlement_config.put_contract(contract(), NOW, by=by)
    source = MemoryEventSource()
    worker = SettlementWorker(
        source, app.settlement_store, app.settlement_config, clock, consumer="test", by=by
    )
    for role in ("admin", "finance", "operations", "auditor"):
        bo.auth.create_user("system", role, PASSWORD, frozenset({Role(role)}))
    bo.auth.create_user(
        "system", "partner", PASSWORD, frozenset({Role.PARTNER}),
        scope=frozenset({OwnerRef(OwnerKind.PARTNER, "pa")}),
    )  # fmt: skip
    api = create_api(app, bo)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the console's server did not start"
        time.sleep(0.02)
    world = ConsoleWorld(app, bo, clock, f"http://127.0.0.1:{port}", source, worker)
    for name in ("admin", "finance"):
        world.totp_secrets[name] = _enrol(bo, clock, name)
    # March (ended: it may be closed) and April (open) for op1; op2 in April with pb.
    world.bet_and_win(20_000, 7_500, MAR)
    world.bet_and_win(10_000, 2_500, APR)
    world.bet_and_win(8_000, 1_000, APR, operator="op2", agent="pb", region="latam")
    world.bet_and_win(3_000, 500, APR, provider="acme", game_type="live", agent="pa")
    try:
        yield world
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.close()
        bo.close()


__all__ = ["ROLES", "ConsoleWorld", "Decimal"]
