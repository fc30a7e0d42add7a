"""The scaled event log: a NATS JetStream stream, deduplicated by the server.

Layout. Each event is one message on ``<prefix>.<operator>.<h>`` where ``h`` is a hash of
its idempotency key: the operator token partitions the stream (a consumer or a writer
takes ``<prefix>.<operator>.>``), and one subject per key lets the server itself refuse
a second message for a key: every publish carries ``Nats-Expected-Last-Subject-Sequence:
0`` (the subject must be empty), plus ``Nats-Msg-Id`` = the key, so a retry inside the
duplicate window is acknowledged as a duplicate with the first message's sequence. The
position of an event is its stream sequence.

A refused publish means the key is known: the first message is read back and compared
(:func:`first_difference`); the same content is a duplicate, other content a conflict,
kept on its own stream for a person. Appends are pipelined: one call publishes its whole
batch before awaiting the acknowledgements, in order, so positions follow arrival order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from tally.adapters.nats.loop import LoopThread, fetch_ready
from tally.events import codec
from tally.events.model import Event, first_difference
from tally.events.ports import Appended, AppendResult
from tally.kernel.errors import StoreUnavailable

# Named limits of the JetStream log.
DUPLICATE_WINDOW_S = 2 * 3_600.0  # the server's own msg-id dedup (the subject check has none)
READ_WAIT_S = 0.2  # how long a read waits for messages before answering "nothing new"
PUBLISH_PENDING_MAX = 20_000  # publishes in flight on one connection
PUBLISH_WINDOW = 1_000  # publishes sent before their acknowledgements are awaited
_WRONG_LAST_SEQUENCE = 10071  # JetStream: the subject was not empty
_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class StreamNames:
    stream: str = "TALLY_EVENTS"
    subjects: str = "tally.events"  # prefix; events go to <prefix>.<operator>.<key hash>
    conflicts: str = "TALLY_EVENT_CONFLICTS"

    @property
    def conflict_subject(self) -> str:
        return f"{self.subjects}-conflicts"


def operator_token(operator: str) -> str:
    """An operator id as one subject token: no dots or wildcards can slip through."""
    cleaned = _TOKEN.sub("_", operator)[:64]
    if cleaned != operator:
        # Distinct ids must stay distinct partitions.
        cleaned += "_" + hashlib.sha256(operator.encode()).hexdigest()[:8]
    return cleaned or "_"


def key_subject(names: StreamNames, event: Event) -> str:
    digest = hashlib.sha256(event.key.encode()).hexdigest()[:40]
    return f"{names.subjects}.{operator_token(event.operator)}.{digest}"


class JetStreamEventLog:
    def __init__(self, url: str, names: StreamNames | None = None) -> None:
        self.names = names or StreamNames()
        self._loop = LoopThread("nats-event-log")
        self._reader: JetStreamContext.PullSubscription | None = None
        self._next = 0  # the position the reader's next message will have
        try:
            self._nc, self._js = self._loop.run(self._connect(url))
        except Exception as exc:
            self._loop.stop()
            raise StoreUnavailable(f"NATS at {url}: {exc}") from exc

    async def _connect(self, url: str) -> tuple[Client, JetStreamContext]:
        nc = await nats.connect(
            url, connect_timeout=3, max_reconnect_attempts=-1, reconnect_time_wait=0.5
        )
        js = nc.jetstream(publish_async_max_pending=PUBLISH_PENDING_MAX)
        names = self.names
        for config in (
            StreamConfig(
                name=names.stream,
                subjects=[f"{names.subjects}.>"],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_S,
                allow_direct=True,
            ),
            StreamConfig(
                name=names.conflicts,
                subjects=[names.conflict_subject],
                storage=StorageType.FILE,
            ),
        ):
            try:
                await js.add_stream(config)
            except APIError as exc:
                if exc.err_code != 10058:  # exists with other settings: keep the server's
                    raise
        return nc, js

    # -- append -----------------------------------------------------------------------------
    def append(self, events: Sequence[Event]) -> list[AppendResult]:
        try:
            return self._loop.run(self._append(list(events)))
        except (NatsTimeout, TimeoutError, nats.errors.ConnectionClosedError) as exc:
            raise StoreUnavailable(f"NATS append failed: {exc}") from exc

    async def _append(self, events: list[Event]) -> list[AppendResult]:
        results: list[AppendResult] = []
        first_seen: dict[str, Event] = {}
        # In windows, so a big append never overruns the client's outbound buffer.
        for start in range(0, len(events), PUBLISH_WINDOW):
            window = events[start : start + PUBLISH_WINDOW]
            results += await self._append_window(window, first_seen)
        return results

    async def _append_window(
        self, events: list[Event], first_seen: dict[str, Event]
    ) -> list[AppendResult]:
        names = self.names
        pending = []
        for event in events:
            headers = {
                "Nats-Msg-Id": event.key,
                "Nats-Expected-Last-Subject-Sequence": "0",
            }
            pending.append(
                await self._js.publish_async(
                    key_subject(names, event),
                    codec.dumps(event).encode(),
                    stream=names.stream,
                    headers=headers,
                )
            )
        results: list[AppendResult] = []
        for event, future in zip(events, pending, strict=True):
            try:
                ack = await future
            except APIError as exc:
                if exc.err_code != _WRONG_LAST_SEQUENCE:
                    raise
                results.append(await self._known(event, first_seen))
                continue
            if ack.duplicate:
                results.append(await self._known(event, first_seen, ack.seq))
                continue
            first_seen[event.key] = event
            results.append(AppendResult(event.key, Appended.ACCEPTED, ack.seq))
        return results

    async def _known(
        self, event: Event, first_seen: dict[str, Event], seq: int | None = None
    ) -> AppendResult:
        """The key exists: the same content is a duplicate, other content a conflict."""
        if seq is None:
            stored = await self._js.get_msg(
                self.names.stream, subject=key_subject(self.names, event)
            )
        else:
            stored = await self._js.get_msg(self.names.stream, seq)
        assert stored.seq is not None and stored.data is not None
        first = codec.loads(stored.data.decode())
        differs = first_difference(first, event)
        if differs is None:
            return AppendResult(event.key, Appended.DUPLICATE, stored.seq)
        body = json.dumps(
            {"key": event.key, "differs_in": differs, "body": codec.dumps(event)},
            separators=(",", ":"),
        )
        await self._js.publish(self.names.conflict_subject, body.encode())
        return AppendResult(event.key, Appended.CONFLICT, stored.seq, differs)

    # -- read -------------------------------------------------------------------------------
    def read(self, after: int, limit: int) -> list[tuple[int, Event]]:
        return self._loop.run(self._read(after, limit))

    async def _read(self, after: int, limit: int) -> list[tuple[int, Event]]:
        if self._reader is None or self._next != after + 1:
            await self._reposition(after + 1)
        assert self._reader is not None
        messages = await fetch_ready(self._reader, limit, READ_WAIT_S)
        out: list[tuple[int, Event]] = []
        for message in messages:
            seq = message.metadata.sequence.stream
            out.append((seq, codec.loads_stored(message.data.decode())))
            self._next = seq + 1
        return out

    async def _reposition(self, start: int) -> None:
        if self._reader is not None:
            await self._reader.unsubscribe()
        self._reader = await self._js.pull_subscribe(
            f"{self.names.subjects}.>",
            stream=self.names.stream,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=max(start, 1),
                ack_policy=AckPolicy.NONE,
                inactive_threshold=60.0,
            ),
        )
        self._next = start

    # -- the rest of the port ---------------------------------------------------------------
    def conflicts(self, limit: int = 100) -> list[tuple[str, str, str]]:
        return self._loop.run(self._conflicts(limit))

    async def _conflicts(self, limit: int) -> list[tuple[str, str, str]]:
        info = await self._js.stream_info(self.names.conflicts)
        out: list[tuple[str, str, str]] = []
        seq = info.state.first_seq
        while len(out) < limit and seq and seq <= info.state.last_seq:
            try:
                message = await self._js.get_msg(self.names.conflicts, seq)
            except NotFoundError:
                seq += 1
                continue
            assert message.data is not None
            item: dict[str, Any] = json.loads(message.data)
            out.append((item["key"], item["differs_in"], item["body"]))
            seq += 1
        return out

    def head(self) -> int:
        info = self._loop.run(self._js.stream_info(self.names.stream))
        return int(info.state.last_seq)

    def drop(self) -> None:
        """Delete both streams (tests and benchmarks use throwaway names)."""

        async def _drop() -> None:
            for name in (self.names.stream, self.names.conflicts):
                with contextlib.suppress(NotFoundError):
                    await self._js.delete_stream(name)

        self._loop.run(_drop())

    def close(self) -> None:
        async def _close() -> None:
            if self._reader is not None:
                with contextlib.suppress(Exception):  # closing anyway
                    await self._reader.unsubscribe()
            await self._nc.flush(timeout=2)
            await self._nc.close()

        try:
            self._loop.run(_close(), timeout=5)
        finally:
            self._loop.stop()
