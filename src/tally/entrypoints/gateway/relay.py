"""Callbacks relayed from HTTP front processes to the gateway's core process (ADR 0017).

A front process speaks HTTP and nothing else: it holds no secret, opens no store, and
passes each callback's request as it was received to the core over a Unix socket. The
core verifies, books and answers it exactly as a single-process gateway does, on its one
batching thread, and sends the answer back. So the interpreter time HTTP costs is spent
in other processes, on the machine's other cores, and the wallet still has one writer.

On the socket both ways a frame is ``length (4 bytes) | request id (8) | header length (4)
| header (JSON) | body``. A call's header is ``[provider, action, received_at, headers,
query, remote, method]``; an answer's is ``[status, content_type, headers]``, with status 0
for a callback the gateway failed on (the body says why). Ids are the front's, per
connection; answers come back in any order.

The socket lives in a directory only this user can open, and the core also checks that
the peer runs as this user (``SO_PEERCRED``) before it reads a byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog

from tally.providers.base import Inbound, Outbound

log = structlog.get_logger("tally.gateway.relay")

FRAME_MAX_BYTES = 2 * 1024 * 1024  # a callback body is at most 1 MiB (app.HARD_BODY_MAX_BYTES)
_LENGTH = struct.Struct(">I")
_HEAD = struct.Struct(">QI")
_FAILED = 0  # an answer's status when the gateway failed on the callback


class RelayError(ValueError):
    """A frame that breaks the relay's protocol: the connection is closed."""


def pack(request_id: int, header: object, body: bytes) -> bytes:
    head = orjson.dumps(header)
    length = _LENGTH.pack(_HEAD.size + len(head) + len(body))
    return b"".join((length, _HEAD.pack(request_id, len(head)), head, body))


def unpack(frame: bytes) -> tuple[int, Any, bytes]:
    """A frame without its length: the request id, the header and the body."""
    if len(frame) < _HEAD.size:
        raise RelayError("frame shorter than its head")
    request_id, head_length = _HEAD.unpack_from(frame)
    end = _HEAD.size + head_length
    if end > len(frame):
        raise RelayError("header longer than its frame")
    try:
        header = orjson.loads(frame[_HEAD.size : end])
    except orjson.JSONDecodeError as exc:
        raise RelayError(f"header is not JSON: {exc}") from None
    return request_id, header, frame[end:]


def split_frames(buffer: bytearray) -> list[bytes]:
    """The whole frames at the start of ``buffer`` (taken out of it), lengths removed."""
    frames: list[bytes] = []
    at = 0
    while len(buffer) - at >= _LENGTH.size:
        (length,) = _LENGTH.unpack_from(buffer, at)
        if length > FRAME_MAX_BYTES:
            raise RelayError(f"frame of {length} bytes, more than {FRAME_MAX_BYTES}")
        if len(buffer) - at - _LENGTH.size < length:
            break
        start = at + _LENGTH.size
        frames.append(bytes(buffer[start : start + length]))
        at = start + length
    del buffer[:at]
    return frames


def pack_call(request_id: int, provider: str, inbound: Inbound) -> bytes:
    header = [
        provider,
        inbound.action,
        inbound.received_at.isoformat(),
        dict(inbound.headers),
        dict(inbound.query),
        inbound.remote,
        inbound.method,
    ]
    return pack(request_id, header, inbound.body)


def unpack_call(frame: bytes) -> tuple[int, str, Inbound]:
    request_id, header, body = unpack(frame)
    try:
        provider, action, received_at, headers, query, remote, method = header
        inbound = Inbound(
            action=_text(action),
            body=body,
            received_at=datetime.fromisoformat(_text(received_at)),
            headers=_strings(headers),
            query=_strings(query),
            remote=_text(remote),
            method=_text(method),
        )
    except (TypeError, ValueError) as exc:
        raise RelayError(f"not a call: {exc}") from None
    return request_id, _text(provider), inbound


def pack_answer(request_id: int, out: Outbound | Exception) -> bytes:
    if isinstance(out, Exception):
        return pack(request_id, [_FAILED, "", {}], str(out).encode())
    return pack(request_id, [out.status, out.content_type, dict(out.headers)], out.body)


def unpack_answer(frame: bytes) -> tuple[int, Outbound | Exception]:
    request_id, header, body = unpack(frame)
    try:
        status, content_type, headers = header
        if status == _FAILED:
            return request_id, RuntimeError(body.decode(errors="replace"))
        return request_id, Outbound(int(status), body, _text(content_type), _strings(headers))
    except (TypeError, ValueError) as exc:
        raise RelayError(f"not an answer: {exc}") from None


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _strings(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return {_text(k): _text(v) for k, v in value.items()}


# -- the core's side ----------------------------------------------------------------------------
class Recipient(Protocol):
    """Where a batch's answers go: a front's connection, or an event loop of this process."""

    def deliver(self, answers: Sequence[tuple[Any, Outbound | Exception]]) -> None: ...


Submit = Callable[[Sequence[tuple[str, Inbound, Recipient, Any]]], None]


class _Front:
    """One front's connection: its calls in, their answers out (one write per batch)."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self._sending = threading.Lock()

    def deliver(self, answers: Sequence[tuple[Any, Outbound | Exception]]) -> None:
        data = b"".join(pack_answer(request_id, out) for request_id, out in answers)
        try:
            with self._sending:
                self.conn.sendall(data)
        except OSError:
            # The front went away, or its connection broke: closed, so that a front
            # still there answers what it waits for 503 (providers retry; every call
            # is idempotent).
            log.warning("relay_front_gone", answers=len(answers))
            with contextlib.suppress(OSError):
                self.conn.shutdown(socket.SHUT_RDWR)


class RelayServer:
    """Accepts fronts on a Unix socket and hands their calls to ``submit`` in batches."""

    def __init__(self, path: Path, submit: Submit) -> None:
        self.path = path
        self._submit = submit
        self._listener: socket.socket | None = None
        self._fronts: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        os.chmod(self.path, 0o600)
        listener.listen(64)
        self._listener = listener
        self._spawn(self._accept, "gateway-relay-accept")

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for conn in self._fronts:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _accept(self) -> None:
        listener = self._listener
        while listener is not None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # stopped
            if not _same_user(conn):
                log.warning("relay_peer_refused")
                conn.close()
                continue
            with self._lock:
                self._fronts.add(conn)
            self._spawn(self._read, "gateway-relay-front", conn)

    def _read(self, conn: socket.socket) -> None:
        front = _Front(conn)
        buffer = bytearray()
        try:
            while chunk := conn.recv(1 << 16):
                buffer += chunk
                calls = [unpack_call(frame) for frame in split_frames(buffer)]
                if calls:
                    self._submit([(p, inbound, front, rid) for rid, p, inbound in calls])
        except RelayError as exc:
            log.error("relay_protocol_broken", error=str(exc))
        except (OSError, RuntimeError):
            pass  # the front, the server or the batches stopped
        finally:
            with self._lock:
                self._fronts.discard(conn)
            conn.close()


def _same_user(conn: socket.socket) -> bool:
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:  # not Linux: the socket's directory alone keeps others out
        return True
    uid: int = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, 12))[1]
    return uid == os.getuid()


# -- a front's side -----------------------------------------------------------------------------
UNAVAILABLE = Outbound(503, b'{"error":"gateway_core_unavailable"}', headers={"retry-after": "1"})


class _Link:
    """One connection to the core and the calls waiting for an answer on it."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.pending: dict[int, asyncio.Future[Outbound | Exception]] = {}
        self.outgoing: list[bytes] = []
        self.reading: asyncio.Task[None] | None = None

    def flush(self) -> None:
        data, self.outgoing = b"".join(self.outgoing), []
        if data and not self.writer.is_closing():
            self.writer.write(data)


class CoreLink:
    """A front's connection to the core, on the front's event loop; made on first use and
    again after it drops. A call in flight when it drops, or made while the core cannot
    be reached, is answered 503: the provider retries, and the call is idempotent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._link: _Link | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Lock | None = None
        self._next_id = 0

    async def handle(self, provider: str, inbound: Inbound) -> Outbound:
        link = await self.connect()
        if link is None:
            return UNAVAILABLE
        loop = asyncio.get_running_loop()
        self._next_id += 1
        future: asyncio.Future[Outbound | Exception] = loop.create_future()
        link.pending[self._next_id] = future
        if not link.outgoing:  # one write for the calls of this turn of the loop
            loop.call_soon(link.flush)
        link.outgoing.append(pack_call(self._next_id, provider, inbound))
        out = await future
        if isinstance(out, Exception):
            raise out
        return out

    async def connect(self) -> _Link | None:
        """The live connection, made now if there is none; None if the core is away."""
        loop = asyncio.get_running_loop()
        link = self._link
        if self._loop is loop and link is not None and not link.writer.is_closing():
            return link
        if self._loop is not loop:  # a new event loop (tests run several): start afresh
            self._loop, self._link, self._connecting = loop, None, asyncio.Lock()
        assert self._connecting is not None
        async with self._connecting:
            if self._link is not None and not self._link.writer.is_closing():
                return self._link
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.path))
            except OSError:
                return None
            link = self._link = _Link(writer)
            link.reading = loop.create_task(self._read(reader, link))
            return link

    async def _read(self, reader: asyncio.StreamReader, link: _Link) -> None:
        buffer = bytearray()
        try:
            while chunk := await reader.read(1 << 16):
                buffer += chunk
                for frame in split_frames(buffer):
                    request_id, out = unpack_answer(frame)
                    future = link.pending.pop(request_id, None)
                    if future is not None and not future.done():
                        future.set_result(out)
        except (RelayError, OSError) as exc:
            log.error("relay_link_broken", error=str(exc))
        finally:
            link.writer.close()
            if self._link is link:
                self._link = None
            for future in link.pending.values():
                if not future.done():
                    future.set_result(UNAVAILABLE)
            link.pending.clear()
