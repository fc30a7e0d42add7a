"""A fake payment service provider: a real HTTP server that pays payouts, and fails
the ways real ones do (ADR 0022).

API (JSON; amounts are integers of minor units, as the card and payout PSPs send them):

- ``POST /payouts`` with an ``Idempotency-Key`` header and ``{"amount", "currency",
  "destination", "reference", "metadata": {"payout_id"}}``: 201 with the payout
  (``status`` "pending"). The same key with the same body is the same payout (200, header
  ``Idempotent-Replayed: true``), never a second payment; the same key with another body
  is 422 ``idempotency_key_reused``. A malformed request is 400, a refused one 422 with a
  reason code (``destination_blocked``, ``destination_rejected``), bad credentials 401.
- ``POST /payouts/batch`` with ``{"payouts": [<payout> + "idempotency_key", ...]}`` (up to
  1,000): each payout answered in order as ``POST /payouts`` would answer it
  (``{"results": [{"status", "body"}]}``); the faults act on the request as a whole.
- ``GET /payouts/{id}`` and ``GET /payouts?idempotency_key=K``: the payout's state
  (pending, paid, failed).
- Webhooks: when a payout is paid or has failed, ``POST <webhook_url>`` with
  ``{"id", "type": "payout.paid"|"payout.failed", "created", "data": <payout>}``, signed:
  ``Psp-Timestamp: <unix seconds>`` and ``Psp-Signature: hex(HMAC-SHA256(secret,
  "<timestamp>." + raw body))``. A delivery answered with anything but 2xx, or not at
  all, is retried a few times.
- ``GET /_sim/ledger``: what the PSP paid, for tests and the demo (not a real PSP's).

Faults (:class:`PspFaults`), drawn from the seed, per idempotency key and attempt (so a
retry draws again): 503 before the request is taken (nothing happens); 500 after it was
taken (an unknown result: the payment goes on); a timeout (taken, and the answer never
comes); a refusal at once; a failure later (``payout.failed``); webhooks lost, sent
twice, or delayed. Whatever the faults, the PSP pays one payout once: its ledger holds
one line per payout that reached "paid", and :meth:`PspState.paid_twice` names any key
paid more than once (there must be none).

Run it: ``python -m tally.simulation.psp --port 8090 --seed 7 --webhook-url URL``; in a
test: ``with FakePsp(seed=7, faults=...) as psp: psp.url``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tally.kernel.currency import is_known

BODY_MAX_BYTES = 64 * 1024  # one payout request
BATCH_MAX = 1_000  # payouts in one batch request
BATCH_BODY_MAX_BYTES = 4 * 1024 * 1024
TEXT_MAX = 255  # keys, destinations, references
AMOUNT_MAX = 10**15  # minor units
WEBHOOK_ATTEMPTS = 5  # deliveries of one webhook before the PSP gives up on it
WEBHOOK_BACKOFF_S = 0.05  # doubled after each failed delivery
WEBHOOK_TIMEOUT_S = 5.0
SERVER_START_S = 10.0
SIGNATURE_HEADER = "Psp-Signature"
TIMESTAMP_HEADER = "Psp-Timestamp"
BLOCKED_PREFIX = "blocked"  # a destination the PSP always refuses (for scenarios)
FAILURE_CODES = ("account_closed", "no_account", "account_frozen")
REFUSALS = ("destination_blocked", "destination_rejected")  # refused at once: 422
# The fake's own signing secret when none is given: a test fixture's, never a real one.
DEFAULT_WEBHOOK_SECRET = "whsec-fake-psp"  # noqa: S105


@dataclass(frozen=True, slots=True)
class PspFaults:
    """Shares (0..1) of requests or webhooks that go wrong, and the delays."""

    error_5xx: float = 0.0  # 503 before the request is taken: nothing happens
    unknown_result: float = 0.0  # taken, then 500: the payment goes on
    timeout: float = 0.0  # taken, then no answer for hang_s
    reject: float = 0.0  # refused at once (422 destination_rejected)
    fail: float = 0.0  # taken, and later failed (payout.failed)
    duplicate_webhook: float = 0.0  # a webhook delivered twice
    lost_webhook: float = 0.0  # a webhook never delivered
    webhook_delay_max_s: float = 0.0  # each webhook waits up to this long
    settle_delay_s: float = 0.0  # from taken to paid or failed
    hang_s: float = 30.0  # how long a "timeout" holds its answer back

    @classmethod
    def all_on(cls) -> PspFaults:
        return cls(
            error_5xx=0.1,
            unknown_result=0.1,
            timeout=0.05,
            reject=0.05,
            fail=0.05,
            duplicate_webhook=0.2,
            lost_webhook=0.1,
            webhook_delay_max_s=0.05,
            settle_delay_s=0.01,
        )


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The PSP's webhook signature: hex HMAC-SHA256 over "<timestamp>." and the body."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


@dataclass(slots=True)
class PspPayout:
    id: str
    idempotency_key: str
    fingerprint: str
    amount: int
    currency: str
    destination: str
    reference: str
    metadata: dict[str, str]
    status: str = "pending"  # pending -> paid | failed; "failed" at once when refused
    failure_code: str = ""
    created: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "idempotency_key": self.idempotency_key,
            "amount": self.amount,
            "currency": self.currency,
            "destination": self.destination,
            "reference": self.reference,
            "metadata": dict(self.metadata),
            "status": self.status,
            "failure_code": self.failure_code,
            "created": self.created,
        }


@dataclass(frozen=True, slots=True)
class LedgerLine:
    payout_id: str
    idempotency_key: str
    amount: int
    currency: str
    destination: str


@dataclass(slots=True)
class PspState:
    """What the PSP holds; safe to read from the test's thread while it serves."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    payouts: dict[str, PspPayout] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    attempts: Counter[str] = field(default_factory=Counter)
    ledger: list[LedgerLine] = field(default_factory=list)
    webhooks: Counter[str] = field(default_factory=Counter)  # sent, lost, duplicated, failed

    def ledger_lines(self) -> list[LedgerLine]:
        with self.lock:
            return list(self.ledger)

    def paid_twice(self) -> list[str]:
        """Idempotency keys (and payout ids) paid more than once: must stay empty."""
        with self.lock:
            keys = Counter(line.idempotency_key for line in self.ledger)
            ids = Counter(line.payout_id for line in self.ledger)
        return sorted([k for k, n in keys.items() if n > 1] + [i for i, n in ids.items() if n > 1])

    def payout_by_key(self, key: str) -> PspPayout | None:
        with self.lock:
            payout_id = self.by_key.get(key)
            return None if payout_id is None else replace(self.payouts[payout_id])


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"code": self.code, "message": self.message}}, self.status)


def _text(body: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or len(value) > TEXT_MAX or (required and not value):
        raise _Refused(400, "invalid_request", f"{name} must be a string of 1-{TEXT_MAX} chars")
    return value


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _Refused(400, "invalid_request", "the body is not JSON") from None
    return _check(body)


def _check(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _Refused(400, "invalid_request", "the body must be a JSON object")
    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= AMOUNT_MAX:
        raise _Refused(400, "invalid_request", "amount must be a positive integer of minor units")
    if not is_known(body.get("currency")):
        raise _Refused(400, "invalid_request", f"unknown currency {body.get('currency')!r}")
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= TEXT_MAX
        for k, v in metadata.items()
    ):
        raise _Refused(400, "invalid_request", "metadata must map strings to strings")
    _text(body, "destination")
    _text(body, "reference", required=False)
    return body


class FakePspApp:
    """The PSP's behaviour, served by Starlette on uvicorn's event loop."""

    def __init__(
        self,
        *,
        seed: int,
        faults: PspFaults,
        webhook_url: str | None,
        webhook_secret: str,
        api_key: str | None,
    ) -> None:
        self.seed = seed
        self.faults = faults
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.api_key = api_key
        self.state = PspState()
        self._tasks: set[asyncio.Task[None]] = set()
        self._due: list[tuple[str, str]] = []  # taken, to settle: (payout id, failure code)
        self._client: httpx.AsyncClient | None = None
        self.asgi = Starlette(
            lifespan=self._lifespan,
            routes=[
                Route("/payouts", self.create, methods=["POST"]),
                Route("/payouts/batch", self.create_batch, methods=["POST"]),
                Route("/payouts", self.find, methods=["GET"]),
                Route("/payouts/{payout_id}", self.get, methods=["GET"]),
                Route("/_sim/ledger", self.ledger, methods=["GET"]),
            ],
        )

    def _rng(self, *parts: object) -> random.Random:
        return random.Random("|".join(str(p) for p in (self.seed, *parts)))

    def _authorised(self, request: Request) -> bool:
        if self.api_key is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode())

    async def _read(self, request: Request, limit: int) -> bytes:
        if not self._authorised(request):
            raise _Refused(401, "unauthorised", "bad API key")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise _Refused(413, "too_large", f"a body is at most {limit} bytes")
        raw = await request.body()
        if len(raw) > limit:
            raise _Refused(413, "too_large", f"a body is at most {limit} bytes")
        return raw

    def _draw(self, *parts: object) -> Callable[[], float]:
        with self.state.lock:
            name = "|".join(str(p) for p in parts)
            attempt = self.state.attempts[name]
            self.state.attempts[name] += 1
        return self._rng("request", name, attempt).random

    def _decide(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        """One payout request, taken or found (under the state lock, no await: concurrent
        requests with one key find one payout): (HTTP status, JSON answer, replayed)."""
        fingerprint = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        known = self.state.by_key.get(key)
        if known is not None:
            payout = self.state.payouts[known]
            if payout.fingerprint != fingerprint:
                message = f"idempotency key {key!r} was used for another payout"
                return 422, {"error": {"code": "idempotency_key_reused", "message": message}}, True
            status, replayed = 200, True
        else:
            payout = self._take(key, fingerprint, body)
            status, replayed = 201, False
        answer = payout.public()
        if answer["status"] == "failed" and answer["failure_code"] in REFUSALS:
            error = {"code": answer["failure_code"], "message": "payout refused", "payout": answer}
            return 422, {"error": error}, replayed
        return status, answer, replayed

    async def _after_taking(self, draw: Callable[[], float]) -> Response | None:
        if draw() < self.faults.unknown_result:
            return JSONResponse({"error": {"code": "internal_error"}}, 500)  # taken, though
        if draw() < self.faults.timeout:
            await asyncio.sleep(self.faults.hang_s)  # taken; the answer comes too late
        return None

    async def create(self, request: Request) -> Response:
        try:
            key = request.headers.get("idempotency-key", "")
            raw = await self._read(request, BODY_MAX_BYTES)
            if not key or len(key) > TEXT_MAX:
                raise _Refused(400, "invalid_request", "an Idempotency-Key header is required")
            body = _parse(raw)
        except _Refused as refused:
            return refused.response()
        draw = self._draw("one", key)
        if draw() < self.faults.error_5xx:
            return JSONResponse({"error": {"code": "unavailable"}}, 503)  # nothing taken
        with self.state.lock:
            status, answer, replayed = self._decide(key, body)
            self._settle_due()
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        if status < 300:
            late = await self._after_taking(draw)
            if late is not None:
                return late
        return JSONResponse(answer, status, headers=headers)

    async def create_batch(self, request: Request) -> Response:
        """Up to BATCH_MAX payouts in one request, each under its own idempotency key
        (``"idempotency_key"`` in the item), each answered as ``POST /payouts`` would be,
        in order. The faults act on the request as a whole."""
        try:
            raw = await self._read(request, BATCH_BODY_MAX_BYTES)
            try:
                items = orjson.loads(raw).get("payouts")
            except (orjson.JSONDecodeError, AttributeError):
                raise _Refused(400, "invalid_request", "the body is not a JSON object") from None
            if not isinstance(items, list) or not 0 < len(items) <= BATCH_MAX:
                raise _Refused(400, "invalid_request", f"payouts: a list of 1-{BATCH_MAX}")
            parsed: list[tuple[str, dict[str, Any]] | _Refused] = []
            for item in items:
                try:
                    if not isinstance(item, dict):
                        raise _Refused(400, "invalid_request", "a payout is a JSON object")
                    key = item.pop("idempotency_key", "")
                    if not isinstance(key, str) or not key or len(key) > TEXT_MAX:
                        raise _Refused(400, "invalid_request", "idempotency_key is required")
                    parsed.append((key, _check(item)))
                except _Refused as refused:
                    parsed.append(refused)
        except _Refused as refused:
            return refused.response()
        keys = [entry[0] for entry in parsed if isinstance(entry, tuple)]
        draw = self._draw("batch", hashlib.sha256("\x00".join(keys).encode()).hexdigest())
        if draw() < self.faults.error_5xx:
            return JSONResponse({"error": {"code": "unavailable"}}, 503)  # nothing taken
        results: list[dict[str, Any]] = []
        with self.state.lock:
            for entry in parsed:
                if isinstance(entry, _Refused):
                    error = {"code": entry.code, "message": entry.message}
                    results.append({"status": entry.status, "body": {"error": error}})
                else:
                    status, answer, _ = self._decide(*entry)
                    results.append({"status": status, "body": answer})
            self._settle_due()
        late = await self._after_taking(draw)
        if late is not None:
            return late
        return Response(orjson.dumps({"results": results}), media_type="application/json")

    def _take(self, key: str, fingerprint: str, body: dict[str, Any]) -> PspPayout:
        """Record a new payout (under the state lock) and start its settlement."""
        fate = self._rng("payout", key)
        payout = PspPayout(
            id=f"po_{len(self.state.payouts) + 1:08d}_{fate.getrandbits(32):08x}",
            idempotency_key=key,
            fingerprint=fingerprint,
            amount=body["amount"],
            currency=body["currency"],
            destination=body["destination"],
            reference=body.get("reference", ""),
            metadata=dict(body.get("metadata", {})),
            created=int(time.time()),
        )
        self.state.payouts[payout.id] = payout
        self.state.by_key[key] = payout.id
        if payout.destination.startswith(BLOCKED_PREFIX):
            payout.status, payout.failure_code = "failed", "destination_blocked"
        elif fate.random() < self.faults.reject:
            payout.status, payout.failure_code = "failed", "destination_rejected"
        else:
            failure = fate.choice(FAILURE_CODES) if fate.random() < self.faults.fail else ""
            self._due.append((payout.id, failure))
        return payout

    def _settle_due(self) -> None:
        """Start settling what the request just took (called under the state lock)."""
        if self._due:
            due, self._due = self._due, []
            self._spawn(self._settle(due))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, due: list[tuple[str, str]]) -> None:
        if self.faults.settle_delay_s:
            await asyncio.sleep(self.faults.settle_delay_s)
        events = [
            event for payout_id, failure in due if (event := self._settle_one(payout_id, failure))
        ]
        if self.webhook_url:
            await asyncio.gather(*(self._deliver(event) for event in events))

    def _settle_one(self, payout_id: str, failure: str) -> dict[str, Any] | None:
        with self.state.lock:
            payout = self.state.payouts[payout_id]
            if payout.status != "pending":
                return None
            if failure:
                payout.status, payout.failure_code = "failed", failure
            else:
                payout.status = "paid"
                self.state.ledger.append(
                    LedgerLine(
                        payout.id,
                        payout.idempotency_key,
                        payout.amount,
                        payout.currency,
                        payout.destination,
                    )
                )
            event = {
                "id": f"evt_{payout.id}_{payout.status}",
                "type": f"payout.{payout.status}",
                "created": int(time.time()),
                "data": payout.public(),
            }
        return event

    async def _deliver(self, event: dict[str, Any]) -> None:
        if not self.webhook_url:
            return
        rng = self._rng("webhook", event["id"])
        if rng.random() < self.faults.lost_webhook:
            self._count("lost")
            return
        copies = 2 if rng.random() < self.faults.duplicate_webhook else 1
        if copies == 2:
            self._count("duplicated")
        for _ in range(copies):
            if self.faults.webhook_delay_max_s:
                await asyncio.sleep(rng.uniform(0, self.faults.webhook_delay_max_s))
            await self._post(event)

    async def _post(self, event: dict[str, Any]) -> None:
        assert self.webhook_url is not None
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S)
        body = json.dumps(event, separators=(",", ":")).encode()
        backoff_s = WEBHOOK_BACKOFF_S
        for _ in range(WEBHOOK_ATTEMPTS):
            stamp = int(time.time())
            headers = {
                "content-type": "application/json",
                TIMESTAMP_HEADER: str(stamp),
                SIGNATURE_HEADER: sign(self.webhook_secret, stamp, body),
            }
            try:
                answer = await self._client.post(self.webhook_url, content=body, headers=headers)
                if 200 <= answer.status_code < 300:
                    self._count("sent")
                    return
            except httpx.HTTPError:
                pass
            self._count("retried")
            await asyncio.sleep(backoff_s)
            backoff_s *= 2
        self._count("failed")

    def _count(self, what: str) -> None:
        with self.state.lock:
            self.state.webhooks[what] += 1

    async def find(self, request: Request) -> Response:
        if not self._authorised(request):
            return _Refused(401, "unauthorised", "bad API key").response()
        key = request.query_params.get("idempotency_key", "")
        payout = self.state.payout_by_key(key)
        return JSONResponse({"data": [] if payout is None else [payout.public()]})

    async def get(self, request: Request) -> Response:
        if not self._authorised(request):
            return _Refused(401, "unauthorised", "bad API key").response()
        with self.state.lock:
            payout = self.state.payouts.get(request.path_params["payout_id"])
            answer = None if payout is None else payout.public()
        if answer is None:
            return _Refused(404, "not_found", "no such payout").response()
        return JSONResponse(answer)

    async def ledger(self, request: Request) -> Response:
        lines = [asdict(line) for line in self.state.ledger_lines()]
        return JSONResponse({"lines": lines, "paid_twice": self.state.paid_twice()})

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._client is not None:
                await self._client.aclose()
                self._client = None


class FakePsp:
    """The fake PSP on a real local port, in a thread of its own (a test fixture, or the
    demo's). ``webhook_url`` may be set after it started."""

    def __init__(
        self,
        *,
        seed: int = 0,
        faults: PspFaults | None = None,
        webhook_url: str | None = None,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.app = FakePspApp(
            seed=seed,
            faults=faults or PspFaults(),
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            api_key=api_key,
        )
        self._host, self._port = host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def state(self) -> PspState:
        return self.app.state

    @property
    def url(self) -> str:
        assert self._socket is not None, "the PSP is not started"
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def webhook_url(self) -> str | None:
        return self.app.webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self.app.webhook_url = url

    def start(self) -> FakePsp:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((self._host, self._port))
        config = uvicorn.Config(
            self.app.asgi,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        server, sockets = self._server, [self._socket]
        # uvicorn's own run (its event loop and HTTP parser, as the gateway's): under a
        # bare asyncio.run each answer came some 40 ms late here.
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=sockets), name="fake-psp", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + SERVER_START_S
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake PSP did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=SERVER_START_S)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> FakePsp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tally.simulation.psp",
        description="A fake payment service provider (payouts, signed webhooks, faults).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--webhook-url", default=None, help="where payout events are posted")
    parser.add_argument(
        "--webhook-secret-env",
        default="TALLY_PSP_WEBHOOK_SECRET",
        help="environment variable holding the webhook signing secret",
    )
    parser.add_argument(
        "--api-key-env",
        default="TALLY_PSP_API_KEY",
        help="environment variable holding the API key (unset: none asked)",
    )
    parser.add_argument(
        "--faults",
        choices=("none", "all"),
        default="none",
        help="every fault at its demo rate, or none",
    )
    for name in (
        "error_5xx",
        "unknown_result",
        "timeout",
        "reject",
        "fail",
        "duplicate_webhook",
        "lost_webhook",
    ):
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=float,
            default=None,
            help=f"share of {name.replace('_', ' ')} (0..1)",
        )
    args = parser.parse_args(argv)
    faults = PspFaults.all_on() if args.faults == "all" else PspFaults()
    overrides = {
        name: getattr(args, name)
        for name in (
            "error_5xx",
            "unknown_result",
            "timeout",
            "reject",
            "fail",
            "duplicate_webhook",
            "lost_webhook",
        )
        if getattr(args, name) is not None
    }
    faults = replace(faults, **overrides)
    psp = FakePsp(
        seed=args.seed,
        faults=faults,
        webhook_url=args.webhook_url,
        webhook_secret=os.environ.get(args.webhook_secret_env, DEFAULT_WEBHOOK_SECRET),
        api_key=os.environ.get(args.api_key_env) or None,
        host=args.host,
        port=args.port,
    )
    psp.start()
    print(f"fake PSP listening on {psp.url} (seed {args.seed}; faults {faults})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        psp.stop()


if __name__ == "__main__":
    main()
