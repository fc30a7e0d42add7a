"""The gateway's HTTP face: ``/providers/{provider}/{action}`` in, the provider's answer out.

It does no parsing of its own: the body is read as bytes (up to a named limit) and the
provider's adapter does the rest, so what is verified is exactly what was signed. The
answer is sent only after the ledger and the event log have committed.

Callbacks are the hot path, so they are served by a bare ASGI handler in front of the
FastAPI app (which serves everything else) and handed to the gateway in batches on one
thread: the calls that arrive while one batch commits form the next, and share its
ledger and event-log commits (ADR 0011).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any
from urllib.parse import parse_qsl

import structlog
from fastapi import FastAPI

from tally.app.metrics import Metrics
from tally.entrypoints.gateway.relay import Recipient
from tally.kernel.clock import Clock
from tally.providers.base import Inbound, Outbound
from tally.providers.gateway import Gateway

log = structlog.get_logger("tally.gateway.http")

HARD_BODY_MAX_BYTES = 1024 * 1024  # refused unread; up to it, the adapter answers
BATCH_MAX_CALLS = 512  # callbacks handed to the gateway at once
CALLBACK_PREFIX = "/providers/"
CALLBACK_METHODS = frozenset({"POST", "GET"})
_ALLOW = [(b"allow", b"GET, POST")]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handle = Callable[[str, Inbound], Awaitable[Outbound]]
_Waiting = tuple[str, Inbound, Recipient, Any]  # provider, request, whom to answer, their token


class _Loop:
    """Answers for requests of an event loop of this process: one wake-up per batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def deliver(self, answers: Sequence[tuple[Any, Outbound | Exception]]) -> None:
        # A closed loop raises: nobody waits for those answers any more.
        with suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_resolve, answers)


class CallbackBatches:
    """Callbacks handed to the gateway many at a time, on one thread.

    While the gateway works through one batch, its commits included, those that arrive
    wait for the next. Under load a batch is what arrived during the one before; when
    idle, a batch is the one callback that came. Callbacks come from this process's event
    loop (``handle``) or from front processes through the relay (``submit``).
    """

    def __init__(
        self, gateway: Gateway, max_calls: int = BATCH_MAX_CALLS, metrics: Metrics | None = None
    ) -> None:
        self._gateway = gateway
        self._max_calls = max_calls
        self._metrics = metrics
        self._waiting: deque[_Waiting] = deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop] = (
            weakref.WeakKeyDictionary()
        )

    def start(self) -> None:
        with self._ready:
            self._stopping = False
        self._thread = threading.Thread(target=self._run, name="gateway-batches", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Answer what is waiting, then end the thread."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    async def handle(self, provider: str, inbound: Inbound) -> Outbound:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outbound] = loop.create_future()
        recipient = self._loops.get(loop)
        if recipient is None:
            recipient = self._loops[loop] = _Loop(loop)
        self.submit([(provider, inbound, recipient, future)])
        return await future

    def submit(self, calls: Sequence[_Waiting]) -> None:
        """Calls to answer, each through its recipient's ``deliver`` with its token."""
        with self._ready:
            if self._thread is None or self._stopping:
                raise RuntimeError("the gateway's batches are not running")
            self._waiting.extend(calls)
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._waiting and not self._stopping:
                    self._ready.wait()
                if not self._waiting:
                    return
                take = min(self._max_calls, len(self._waiting))
                batch = [self._waiting.popleft() for _ in range(take)]
            outs = self._answers(batch)
            if self._metrics is not None:  # before the answers: one answered is counted
                self._observe(self._metrics, batch, outs)
            self._settle(batch, outs)

    def _answers(self, batch: list[_Waiting]) -> list[Outbound | Exception]:
        """The gateway's answers. A batch that fails as a whole (a defect: a call's own
        failure is answered by the gateway) is handled again a call at a time, so one
        poisoned callback fails alone. Calls are idempotent: this is a provider's retry,
        made sooner."""
        try:
            outs = self._gateway.handle_many([(p, inbound) for p, inbound, _, _ in batch])
            if len(outs) != len(batch):
                raise RuntimeError(f"{len(outs)} answers for {len(batch)} callbacks")
            return list(outs)
        except Exception as exc:
            if len(batch) == 1:
                log.exception("gateway_call_failed")
                return [Exception(f"the gateway failed: {exc}")]
            log.exception("gateway_batch_split", calls=len(batch))
        return [self._answers([waiting])[0] for waiting in batch]

    def _observe(
        self, metrics: Metrics, batch: list[_Waiting], outs: list[Outbound | Exception]
    ) -> None:
        """Each callback counted where all of them pass, whichever front took it, with its
        time from receipt to answer. A provider the gateway does not know is counted under
        the route's template, so no caller can make up label values."""
        now = self._gateway.clock.now()
        known = self._gateway.registry
        for (provider, inbound, _, _), out in zip(batch, outs, strict=True):
            route = CALLBACK_PREFIX + (provider if known.get(provider) else "{provider}")
            status = out.status if isinstance(out, Outbound) else 500
            seconds = max(0.0, (now - inbound.received_at).total_seconds())
            metrics.observe_request(route, inbound.method, status, seconds)

    @staticmethod
    def _settle(batch: list[_Waiting], outs: list[Outbound | Exception]) -> None:
        """Each request's answer, delivered to its recipient: one delivery per recipient."""
        by_recipient: dict[int, tuple[Recipient, list[tuple[Any, Outbound | Exception]]]] = {}
        for (_, _, recipient, token), out in zip(batch, outs, strict=True):
            by_recipient.setdefault(id(recipient), (recipient, []))[1].append((token, out))
        for recipient, answers in by_recipient.values():
            recipient.deliver(answers)


def _resolve(answers: Sequence[tuple[Any, Outbound | Exception]]) -> None:
    for future, out in answers:
        if future.done():  # the client went away and the request was cancelled
            continue
        if isinstance(out, Exception):
            future.set_exception(out)
        else:
            future.set_result(out)


class GatewayApp:
    """The ASGI app: callbacks (and the benchmark's no-op) here, the rest to FastAPI.
    A single-process gateway and a front process (ADR 0017) both serve HTTP with it."""

    def __init__(
        self,
        api: FastAPI,
        handle: Handle,
        clock: Clock,
        *,
        noop: bool,
        batches: CallbackBatches | None = None,
    ) -> None:
        """``handle`` answers a callback: this process's ``batches`` (their ``handle``),
        or a front's link to the core process (``relay.CoreLink.handle``)."""
        self.api = api
        self.handle = handle
        self.batches = batches
        self._clock = clock
        self._noop = noop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if path.startswith(CALLBACK_PREFIX):
                provider, slash, action = path[len(CALLBACK_PREFIX) :].partition("/")
                if provider and slash:
                    if method in CALLBACK_METHODS:
                        await self._callback(provider, action, scope, receive, send)
                    else:
                        refused = Outbound(405, b'{"error":"method_not_allowed"}')
                        await _answer(send, refused, _ALLOW)
                    return
            if self._noop and path == "/noop" and method == "POST":
                # The same bare path as a callback, minus the gateway's work.
                if await _body(receive, send) is not None:
                    await _answer(send, Outbound(200, b'{"balance":0}'))
                return
        await self.api(scope, receive, send)

    async def _callback(
        self, provider: str, action: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > HARD_BODY_MAX_BYTES:
            # Not even read: far beyond any callback (the adapter refuses smaller excess).
            await _answer(send, _TOO_LARGE)
            return
        body = await _body(receive, send)
        if body is None:
            return
        client = scope.get("client")
        inbound = Inbound(
            action=action,
            body=body,
            received_at=self._clock.now(),
            headers=headers,
            query=dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)),
            remote=client[0] if client else "",
            method=scope["method"],
        )
        out = await self.handle(provider, inbound)
        await _answer(send, out)


_TOO_LARGE = Outbound(413, b'{"error":"body_too_large"}')


async def _body(receive: Receive, send: Send) -> bytes | None:
    """The whole body; None if the client went away first, or if it grew beyond the hard
    limit without declaring its length (then answered 413 here)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > HARD_BODY_MAX_BYTES:
            await _answer(send, _TOO_LARGE)
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(
    send: Send, out: Outbound, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out.headers.items()]
    headers += extra or []
    if not any(k == b"content-type" for k, _ in headers):
        headers.append((b"content-type", out.content_type.encode("latin-1")))
    headers.append((b"content-length", str(len(out.body)).encode()))
    await send({"type": "http.response.start", "status": out.status, "headers": headers})
    await send({"type": "http.response.body", "body": out.body})


def create_gateway_api(
    gateway: Gateway,
    clock: Clock,
    metrics: Metrics | None = None,
    *,
    noop: bool = False,
    batch_max_calls: int = BATCH_MAX_CALLS,
) -> GatewayApp:
    """``noop`` adds ``POST /noop``: reads the body, does nothing, answers; the benchmark's
    yardstick for what this server costs before any work. The callback batches run
    while the server does (its lifespan), and count each callback in ``metrics``."""
    batches = CallbackBatches(gateway, batch_max_calls, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batches.start()
        try:
            yield
        finally:
            batches.stop()

    api = FastAPI(title="Tally provider gateway", docs_url=None, redoc_url=None, lifespan=lifespan)

    @api.get("/health")
    def health() -> dict[str, object]:
        return {"status": "ok", "providers": gateway.registry.providers()}

    return GatewayApp(api, batches.handle, clock, noop=noop, batches=batches)
