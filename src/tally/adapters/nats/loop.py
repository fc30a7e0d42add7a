"""A private asyncio loop on a thread, so synchronous ports can use nats-py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

CALL_TIMEOUT_S = 30.0  # the longest one port call may wait for the server
FETCH_REST_S = 0.005  # after the first message, how long to wait for more of a batch


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def fetch_ready(sub: Any, limit: int, wait_s: float) -> list[Any]:
    """Up to ``limit`` messages of a pull subscription, answering as soon as one is there.

    A single ``fetch(limit)`` with nothing pending long-polls until ``limit`` messages
    arrive or the wait ends, which holds a live consumer back by the whole wait; so wait
    for one message, then take whatever else is ready at once.
    """
    from nats.errors import TimeoutError as NatsTimeout

    try:
        first: list[Any] = await sub.fetch(batch=1, timeout=wait_s)
    except NatsTimeout:
        return []
    if limit <= 1:
        return first
    try:
        rest: list[Any] = await sub.fetch(batch=limit - 1, timeout=FETCH_REST_S)
    except NatsTimeout:
        rest = []
    return first + rest
