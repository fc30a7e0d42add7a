"""A private asyncio loop on a thread, so synchronous ports can use nats-py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import structlog

T = TypeVar("T")
log = structlog.get_logger("tally.nats")

CONNECT_TIMEOUT_S = 3.0  # the first connection; later ones are reconnects
RECONNECT_WAIT_S = 0.5  # between reconnect attempts (attempts are unlimited: a server restart
#   must never leave a worker with a closed connection it cannot recover)
CALL_TIMEOUT_S = 30.0  # the longest one port call may wait for the server
FETCH_REST_S = 1.0  # the most a request for messages already waiting may take
FETCH_MARGIN_S = 0.05  # past a request's own expiry, before its reader gives up on it
CATCH_UP_PATIENCE_S = 10.0  # how long a read may see nothing while the stream has more


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT_S) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()  # a call given up on must not go on acting later
            raise

    def call(self, coro: Coroutine[Any, Any, T], what: str) -> T:
        """``run``, with NATS failures translated at the port's boundary: retryable."""
        import nats.errors

        from tally.kernel.errors import StoreUnavailable

        try:
            return self.run(coro)
        except (nats.errors.Error, TimeoutError) as exc:
            raise StoreUnavailable(f"NATS {what} failed: {type(exc).__name__}: {exc}") from exc

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def connect(url: str, name: str) -> Any:
    """A connection that reconnects forever and reports its troubles in the log."""
    import nats

    async def on_error(exc: Exception) -> None:
        log.warning("nats_connection_failed", client=name, error=f"{type(exc).__name__}: {exc}")

    opened: list[Any] = []

    async def on_disconnected() -> None:
        if opened and opened[0].is_closed:
            return  # closed on purpose
        log.warning("nats_disconnected", client=name)

    async def on_reconnected() -> None:
        log.info("nats_reconnected", client=name)

    client = await nats.connect(
        url,
        name=name,
        connect_timeout=CONNECT_TIMEOUT_S,
        max_reconnect_attempts=-1,
        reconnect_time_wait=RECONNECT_WAIT_S,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
    )
    opened.append(client)
    return client


def _reply_field(message: Any, v1: int, v2: int) -> int | None:
    """A number from a JetStream message's reply subject, without building the whole
    metadata (a timestamp and three objects) for every message of a replay. The subject
    is ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.
    <pending>`` (9 tokens) or, with a domain and an account hash after ``ACK``, 12 or more.
    """
    tokens = message.reply.split(".") if message.reply else []
    if len(tokens) == 9:
        return int(tokens[v1])
    if len(tokens) >= 11 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[v2])
    return None


def stream_sequence(message: Any) -> int:
    """``message.metadata.sequence.stream``, read straight from the reply subject."""
    found = _reply_field(message, 5, 7)
    return int(message.metadata.sequence.stream) if found is None else found


def pending_after(message: Any) -> int | None:
    """How many messages the consumer still had for us after this one (None: unknown)."""
    return _reply_field(message, 8, 10)


class PullReader:
    """A JetStream pull consumer read through one plain subscription of our own.

    nats-py's ``PullSubscription.fetch`` (2.16) spends a task, a timer and a uuid on each
    message it hands out, and it could hold a reader for a whole expiry. In one replay of
    300,000 events a read saw nothing for 10 s and gave up while the stream had more. A
    pull request is only a message to ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>``
    that names an inbox. The consumer's messages then arrive on that inbox. A status
    message (404 no messages, 408 request expired, 409 ...) ends a request that was not
    filled. Every delivered message is kept in order until it is taken, even one that
    arrives after its request was given up on, so nothing the server delivered is dropped.
    """

    def __init__(self, nc: Any, stream: str, consumer: str) -> None:
        self._nc = nc
        self.stream = stream
        self.consumer = consumer
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = ""
        self._sub: Any = None
        self._got: list[Any] = []
        self._owed = 0  # messages the request in flight may still bring
        self._ended = asyncio.Event()

    async def start(self) -> PullReader:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)
        return self

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_message(self, message: Any) -> None:
        headers = message.headers
        if headers and not message.data and headers.get("Status"):
            if headers["Status"] != "100":  # not a heartbeat: the request is over
                self._owed = 0
                self._ended.set()
            return
        self._got.append(message)
        self._owed -= 1
        if self._owed <= 0:
            self._ended.set()

    async def _ask(self, batch: int, wait_s: float = 0.0) -> None:
        """Request ``batch`` messages: those waiting now (``no_wait``), or, given a wait,
        the first ones to come within it."""
        self._owed = batch
        self._ended.clear()
        request: dict[str, Any] = {"batch": batch}
        if wait_s:
            request["expires"] = int(wait_s * 1e9)
        else:
            request["no_wait"] = True
        await self._nc.publish(self._next, json.dumps(request).encode(), reply=self._inbox)

    async def _settle_request(self, wait_s: float) -> None:
        """Wait until the request in flight is filled or ended, at most ``wait_s`` (plus a
        margin for the server's own expiry to be heard first); then it counts as over,
        and whatever it still brings is kept for the next read."""
        if self._owed > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), wait_s + FETCH_MARGIN_S)
        self._owed = 0

    async def ready(self, limit: int, wait_s: float) -> list[Any]:
        """Up to ``limit`` messages, answering as soon as one is there.

        A single request for ``limit`` with nothing pending long-polls until ``limit``
        messages arrive or the wait ends, which would hold a live consumer back by the
        whole wait; so wait for one message, then ask for exactly what the consumer says
        is still waiting (every message carries that count).
        """
        if not self._got:
            await self._ask(1, wait_s)
            await self._settle_request(wait_s)
            if not self._got:
                return []
        wanted = self._waiting(limit)
        if wanted > 0:
            await self._ask(wanted)
            await self._settle_request(FETCH_REST_S)
        out = self._got[:limit]
        del self._got[:limit]
        return out

    def _waiting(self, limit: int) -> int:
        """How many more to ask for: what the consumer still has for us, as of the last
        message delivered, up to what fits in ``limit`` beside those already here."""
        room = limit - len(self._got)
        pending = pending_after(self._got[-1])
        return room if pending is None else min(pending, room)


async def fetch_until_caught_up(
    reader: PullReader, js: Any, stream: str, after: int, limit: int, wait_s: float
) -> list[Any]:
    """:meth:`PullReader.ready`, but "nothing" only if the stream has nothing after ``after``.

    A fresh consumer on a busy machine may take longer than one wait to deliver; an empty
    answer would then tell a reader "caught up" (and ``drain`` would stop) while events
    are there. So an empty fetch is checked against the stream's last sequence.
    """
    deadline = time.monotonic() + CATCH_UP_PATIENCE_S
    while True:
        messages = await reader.ready(limit, wait_s)
        if messages:
            return messages
        if await caught_up(js, stream, after, deadline):
            return []


async def caught_up(js: Any, stream: str, after: int, deadline: float) -> bool:
    """After a read that found nothing: True if the stream has nothing after ``after``,
    False if it has (read again); past ``deadline`` (``time.monotonic``), unavailable."""
    from tally.kernel.errors import StoreUnavailable

    info = await js.stream_info(stream)
    if info.state.last_seq <= after:
        return True
    if time.monotonic() > deadline:
        raise StoreUnavailable(
            f"{stream}: events after {after} were not delivered in {CATCH_UP_PATIENCE_S:.0f} s"
        )
    return False


class AckPipeline:
    """Publish many JetStream messages, then collect every ack or refusal, in order.

    What ``JetStreamContext.publish_async`` should do; in nats-py 2.16 a JetStream error
    (e.g. "wrong last sequence") is raised inside its reply callback and the future is
    never resolved, so a refused publish hangs. Acks come back on one inbox subscription;
    each message's reply subject names its slot.
    """

    def __init__(self, nc: Any) -> None:
        self._nc = nc
        self._inbox = ""
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._next = 0

    async def _start(self) -> None:
        self._inbox = self._nc.new_inbox()
        await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_reply)

    async def _on_reply(self, msg: Any) -> None:
        from nats.js.api import PubAck
        from nats.js.errors import APIError, NoStreamResponseError

        future = self._waiting.pop(msg.subject.rsplit(".", 1)[1], None)
        if future is None or future.done():
            return  # an ack for a publish whose call timed out
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(NoStreamResponseError())
            return
        answer = json.loads(msg.data)
        if "error" in answer:
            future.set_exception(APIError(**answer["error"]))
        else:
            future.set_result(PubAck.from_response(answer))

    async def publish(
        self,
        messages: Sequence[tuple[str, bytes, dict[str, str]]],
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> list[Any]:
        """Acks (``PubAck``) or refusals (``APIError``) for ``messages``, in their order."""
        if not self._inbox:
            await self._start()
        futures: list[asyncio.Future[Any]] = []
        slots: list[str] = []
        loop = asyncio.get_running_loop()
        for subject, body, headers in messages:
            slot = str(self._next)
            self._next += 1
            future: asyncio.Future[Any] = loop.create_future()
            self._waiting[slot] = future
            futures.append(future)
            slots.append(slot)
            await self._nc.publish(subject, body, reply=f"{self._inbox}.{slot}", headers=headers)
        try:
            return list(
                await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout_s)
            )
        finally:
            for slot in slots:
                self._waiting.pop(slot, None)
