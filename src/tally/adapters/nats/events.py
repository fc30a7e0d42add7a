"""The scaled event log: a NATS JetStream stream, deduplicated by the server.

Layout. Each event is one message on ``<prefix>.<operator>.<h>`` where ``h`` is a hash of
its idempotency key: the operator token partitions the stream (a consumer or a writer
takes ``<prefix>.<operator>.>``). The position of an event is its stream sequence.

First writer wins, forever. The key is not the operator's: a provider may resend a
transaction naming another operator, which must be a conflict, not a second event. So an
append first claims the key in a key index (its own stream, one subject per key hash,
published with ``Nats-Expected-Last-Subject-Sequence: 0`` so the server refuses a second
claim at any age); the claim names the subject the event goes to. Only then is the event
published, with ``Nats-Msg-Id`` = the key (the server's duplicate window answers a retry
with the first sequence) and the same "subject must be empty" check. A refused claim means
the key is known: the first event is read back and compared (:func:`first_difference`); the
same content is a duplicate, other content a conflict, kept on its own stream for a
person. A claim whose event never landed (a crash between the two publishes) is completed
by the retry of the same event.

Appends are pipelined: one call sends all its claims, then all its events, each phase as
concurrent requests written in order, so positions follow arrival order. (nats-py's
``publish_async`` is not used: in 2.16 a JetStream error on a pipelined publish is raised
inside its reply callback and the future is never resolved, so a refused publish hangs.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    PubAck,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from tally.adapters.nats.loop import (
    AckPipeline,
    LoopThread,
    PullReader,
    connect,
    fetch_until_caught_up,
    stream_sequence,
)
from tally.events import codec
from tally.events.model import Event, first_difference
from tally.events.ports import Appended, AppendResult
from tally.kernel.errors import StoreUnavailable

# Named limits of the JetStream log.
DUPLICATE_WINDOW_S = 2 * 3_600.0  # the server's msg-id dedup; the key index has no window
READ_WAIT_S = 0.2  # how long a read waits for messages before answering "nothing new"
PUBLISH_TIMEOUT_S = 10.0  # how long one pipelined publish may wait for the server's ack
APPEND_CHUNK_MAX = 2_000  # requests in flight per phase of one append
OPERATOR_TOKEN_MAX = 64  # characters of an operator id kept readable in its subject
_STREAM_EXISTS = 10058  # JetStream: a stream of that name exists with other settings
_WRONG_LAST_SEQUENCE = 10071  # JetStream: the subject was not empty
_EXPECT_EMPTY = "Nats-Expected-Last-Subject-Sequence"
_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class StreamNames:
    stream: str = "TALLY_EVENTS"
    subjects: str = "tally.events"  # prefix; events go to <prefix>.<operator>.<key hash>
    conflicts: str = "TALLY_EVENT_CONFLICTS"

    @property
    def conflict_subject(self) -> str:
        return f"{self.subjects}-conflicts"

    @property
    def key_index(self) -> str:
        """The stream of key claims: one subject per key hash, the first claim wins."""
        return f"{self.stream}_KEYS"

    @property
    def key_subjects(self) -> str:
        return f"{self.subjects}-keys"


def operator_token(operator: str) -> str:
    """An operator id as one subject token: no dots or wildcards can slip through."""
    cleaned = _TOKEN.sub("_", operator)[:OPERATOR_TOKEN_MAX]
    if cleaned != operator or not cleaned:
        # Distinct ids must stay distinct partitions (and "" must not become a real id).
        cleaned += "_" + hashlib.sha256(operator.encode()).hexdigest()[:8]
    return cleaned


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def key_subject(names: StreamNames, event: Event) -> str:
    """Where the event itself goes: its operator's partition, one subject per key."""
    return f"{names.subjects}.{operator_token(event.operator)}.{_key_hash(event.key)}"


def claim_subject(names: StreamNames, key: str) -> str:
    """Where the key is claimed, whatever the operator."""
    return f"{names.key_subjects}.{_key_hash(key)}"


class JetStreamEventLog:
    def __init__(
        self,
        url: str,
        names: StreamNames | None = None,
        duplicate_window_s: float = DUPLICATE_WINDOW_S,
    ) -> None:
        self.names = names or StreamNames()
        self._duplicate_window_s = duplicate_window_s
        self._loop = LoopThread("nats-event-log")
        self._reader: PullReader | None = None
        self._next = 0  # the position the reader's next message will have
        try:
            self._nc, self._js = self._loop.run(self._connect(url))
            self._acks = AckPipeline(self._nc)
        except Exception as exc:
            self._loop.stop()
            raise StoreUnavailable(f"NATS at {url}: {exc}") from exc

    async def _connect(self, url: str) -> tuple[Client, JetStreamContext]:
        nc: Client = await connect(url, "tally-event-log")
        js = nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
        names = self.names
        for config in (
            StreamConfig(
                name=names.stream,
                subjects=[f"{names.subjects}.>"],
                storage=StorageType.FILE,
                duplicate_window=self._duplicate_window_s,
                allow_direct=True,
            ),
            StreamConfig(
                name=names.key_index,
                subjects=[f"{names.key_subjects}.>"],
                storage=StorageType.FILE,
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
                if exc.err_code != _STREAM_EXISTS:  # exists with other settings: keep them
                    raise
        return nc, js

    # -- append -----------------------------------------------------------------------------
    def append(self, events: Sequence[Event]) -> list[AppendResult]:
        return self._loop.call(self._append(list(events)), "append")

    async def _append(self, events: list[Event]) -> list[AppendResult]:
        results: list[AppendResult] = []
        for start in range(0, len(events), APPEND_CHUNK_MAX):
            results += await self._append_chunk(events[start : start + APPEND_CHUNK_MAX])
        return results

    async def _pipelined(
        self, messages: list[tuple[str, bytes, dict[str, str]]], stream: str
    ) -> list[PubAck | BaseException]:
        """Publish all, then collect the acks; messages are written in list order."""
        for _, _, headers in messages:
            headers["Nats-Expected-Stream"] = stream  # never land on another stream
        return await self._acks.publish(messages, PUBLISH_TIMEOUT_S)

    async def _append_chunk(self, events: list[Event]) -> list[AppendResult]:
        names = self.names
        subjects = [key_subject(names, event) for event in events]
        claims = await self._pipelined(
            [
                (claim_subject(names, event.key), subject.encode(), {_EXPECT_EMPTY: "0"})
                for event, subject in zip(events, subjects, strict=True)
            ],
            names.key_index,
        )
        # A claim refused means the key was claimed before; publish only where the claim
        # is ours or names this very subject (so a crash between claim and event heals).
        refused = [i for i, claim in enumerate(claims) if _refused_as_known(claim)]
        for claim in claims:
            if not isinstance(claim, PubAck) and not _refused_as_known(claim):
                raise claim
        claimants = await asyncio.gather(*(self._claimant(events[i].key) for i in refused))
        claimed_by: list[str | None] = list(subjects)
        for i, claimant in zip(refused, claimants, strict=True):
            # No claim to read back (the index was purged): the event's subject decides.
            claimed_by[i] = claimant or subjects[i]
        to_publish = [i for i, subject in enumerate(subjects) if claimed_by[i] == subject]
        acks = await self._pipelined(
            [
                (
                    subjects[i],
                    codec.dumps(events[i]).encode(),
                    {"Nats-Msg-Id": events[i].key, _EXPECT_EMPTY: "0"},
                )
                for i in to_publish
            ],
            names.stream,
        )
        published = dict(zip(to_publish, acks, strict=True))
        answers: list[Awaitable[AppendResult]] = []
        for i, event in enumerate(events):
            ack = published.get(i)
            if ack is None:  # claimed under another operator's subject
                answers.append(self._known(event, subject=claimed_by[i]))
            elif isinstance(ack, PubAck):
                if ack.duplicate:
                    answers.append(self._known(event, seq=ack.seq))
                else:
                    answers.append(_ready(AppendResult(event.key, Appended.ACCEPTED, ack.seq)))
            elif _refused_as_known(ack):
                answers.append(self._known(event, subject=subjects[i]))
            else:
                raise ack
        return list(await asyncio.gather(*answers))

    async def _claimant(self, key: str) -> str | None:
        """The subject the first claim of ``key`` named."""
        try:
            claim = await self._js.get_msg(
                self.names.key_index, subject=claim_subject(self.names, key)
            )
        except NotFoundError:
            return None
        return claim.data.decode() if claim.data else None

    async def _known(
        self, event: Event, *, seq: int | None = None, subject: str | None = None
    ) -> AppendResult:
        """The key exists: the same content is a duplicate, other content a conflict."""
        stored = None
        try:
            if seq is not None:
                stored = await self._js.get_msg(self.names.stream, seq)
            elif subject is not None:
                stored = await self._js.get_msg(self.names.stream, subject=subject)
        except NotFoundError:
            stored = None
        if stored is None or stored.data is None or stored.seq is None:
            # Claimed for another operator whose event has not landed (yet): the claim
            # decides, and this delivery names another operator.
            return await self._conflict(event, "operator", 0)
        first = codec.loads(stored.data.decode())
        differs = first_difference(first, event)
        if differs is None:
            return AppendResult(event.key, Appended.DUPLICATE, stored.seq)
        return await self._conflict(event, differs, stored.seq)

    async def _conflict(self, event: Event, differs: str, position: int) -> AppendResult:
        body = json.dumps(
            {"key": event.key, "differs_in": differs, "body": codec.dumps(event)},
            separators=(",", ":"),
        )
        await self._js.publish(self.names.conflict_subject, body.encode())
        return AppendResult(event.key, Appended.CONFLICT, position, differs)

    # -- read -------------------------------------------------------------------------------
    def read(self, after: int, limit: int) -> list[tuple[int, Event]]:
        return [(seq, codec.loads_stored(body)) for seq, body in self.read_stored(after, limit)]

    async def _read(self, after: int, limit: int) -> list[tuple[int, str | bytes]]:
        if self._reader is None or self._next != after + 1:
            await self._reposition(after + 1)
        assert self._reader is not None
        messages = await fetch_until_caught_up(
            self._reader, self._js, self.names.stream, after, limit, READ_WAIT_S
        )
        out: list[tuple[int, str | bytes]] = [
            (stream_sequence(message), message.data) for message in messages
        ]
        if out:
            self._next = out[-1][0] + 1
        return out

    def read_stored(self, after: int, limit: int) -> list[tuple[int, str | bytes]]:
        return self._loop.call(self._read(after, limit), "read")

    async def _reposition(self, start: int) -> None:
        await self._stop_reader()
        consumer = await self._js.add_consumer(
            self.names.stream,
            ConsumerConfig(
                filter_subject=f"{self.names.subjects}.>",
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=max(start, 1),
                ack_policy=AckPolicy.NONE,
                inactive_threshold=60.0,
            ),
        )
        self._reader = await PullReader(self._nc, self.names.stream, consumer.name).start()
        self._next = start

    async def _stop_reader(self) -> None:
        """Stop reading and delete the reader's consumer (else it lingers a minute)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()
            with contextlib.suppress(NotFoundError):
                await self._js.delete_consumer(reader.stream, reader.consumer)

    # -- the rest of the port ---------------------------------------------------------------
    def conflicts(self, limit: int = 100) -> list[tuple[str, str, str]]:
        return self._loop.call(self._conflicts(limit), "conflicts")

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
        info = self._loop.call(self._js.stream_info(self.names.stream), "head")
        return int(info.state.last_seq)

    def drop(self) -> None:
        """Delete both streams (tests and benchmarks use throwaway names)."""

        async def _drop() -> None:
            for name in (self.names.stream, self.names.key_index, self.names.conflicts):
                with contextlib.suppress(NotFoundError):
                    await self._js.delete_stream(name)

        self._loop.run(_drop())

    def close(self) -> None:
        async def _close() -> None:
            with contextlib.suppress(Exception):  # closing anyway
                await self._stop_reader()
            await self._nc.flush(timeout=2)
            await self._nc.close()

        try:
            self._loop.run(_close(), timeout=5)
        finally:
            self._loop.stop()


def _refused_as_known(outcome: object) -> bool:
    """The server refused a publish because its subject already holds a message."""
    return isinstance(outcome, APIError) and outcome.err_code == _WRONG_LAST_SEQUENCE


async def _ready(result: AppendResult) -> AppendResult:
    return result
