"""Settlement's event source on a durable JetStream pull consumer, acknowledged after commit.

The settlement store's committed position is the truth. When a worker starts, the
durable consumer is (re)created to deliver from that position + 1, so whatever was
delivered but not committed before a crash comes again. Messages are acknowledged
(``AckPolicy.ALL``: one ack covers all before it) only after the worker's transaction with
their effects and the position has committed. A redelivery of something at or below the
position is acknowledged and skipped; a message that arrives ahead of a gap (after an
ack-wait expiry) waits in a buffer until the gap fills, so settlement always sees the
stream in order.
"""

from __future__ import annotations

import contextlib
import time

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from tally.adapters.nats.events import StreamNames
from tally.adapters.nats.loop import (
    CATCH_UP_PATIENCE_S,
    LoopThread,
    PullReader,
    caught_up,
    connect,
    stream_sequence,
)
from tally.kernel.errors import StoreUnavailable
from tally.settlement.engine import SettlementEvent
from tally.settlement.source import stored_to_settlement

log = structlog.get_logger("tally.nats")

# Named limits of the consumer.
ACK_WAIT_S = 120.0  # a batch must commit within this, else its messages come again
MAX_ACK_PENDING = 100_000
FETCH_WAIT_S = 0.2  # how long a read waits for messages before answering "nothing new"


class JetStreamSource:
    def __init__(self, url: str, names: StreamNames | None = None, durable: str = "settlement"):
        self.names = names or StreamNames()
        self.durable = durable
        self._loop = LoopThread("nats-settlement-source")
        self._reader: PullReader | None = None
        self._buffer: dict[int, Msg] = {}
        self._handed: dict[int, Msg] = {}  # read, not yet committed
        try:
            self._nc: Client = self._loop.run(connect(url, f"tally-settlement-{durable}"))
        except Exception as exc:
            self._loop.stop()
            raise StoreUnavailable(f"NATS at {url}: {exc}") from exc
        self._js = self._nc.jetstream()

    async def _subscribe(self, start: int) -> None:
        """The durable consumer, delivering from ``start`` (the committed position + 1)."""
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(self.names.stream, self.durable)
        await self._js.add_consumer(
            self.names.stream,
            ConsumerConfig(
                durable_name=self.durable,
                filter_subject=f"{self.names.subjects}.>",
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=max(start, 1),
                ack_policy=AckPolicy.ALL,
                ack_wait=ACK_WAIT_S,
                max_ack_pending=MAX_ACK_PENDING,
            ),
        )
        self._reader = await PullReader(self._nc, self.names.stream, self.durable).start()

    def read(self, after: int, limit: int) -> list[tuple[int, SettlementEvent]]:
        return self._loop.call(self._read(after, limit), "settlement read")

    async def _read(self, after: int, limit: int) -> list[tuple[int, SettlementEvent]]:
        if self._reader is None:
            await self._subscribe(after + 1)
        assert self._reader is not None
        # Handed out but not committed (the worker's batch failed and it reads again from
        # its committed position): hand those out again now, not after the ack wait.
        for seq in [seq for seq in self._handed if seq > after]:
            self._buffer[seq] = self._handed.pop(seq)
        deadline = time.monotonic() + CATCH_UP_PATIENCE_S
        while True:
            if after + 1 not in self._buffer or len(self._buffer) < limit:
                for message in await self._reader.ready(limit, FETCH_WAIT_S):
                    seq = stream_sequence(message)
                    if seq <= after:
                        await message.ack()  # settled and committed before: only acknowledged
                    else:
                        self._buffer[seq] = message
            out = self._hand_out(after, limit)
            if out:
                return out
            # Nothing in order: "caught up" only if the stream has nothing after ``after``
            # (a worker's drain stops on an empty read).
            if await caught_up(self._js, self.names.stream, after, deadline):
                return []

    def _hand_out(self, after: int, limit: int) -> list[tuple[int, SettlementEvent]]:
        out: list[tuple[int, SettlementEvent]] = []
        expected = after + 1
        while len(out) < limit and expected in self._buffer:
            message = self._buffer.pop(expected)
            self._handed[expected] = message
            out.append((expected, stored_to_settlement(message.data)))
            expected += 1
        return out

    def committed(self, position: int) -> None:
        """The worker committed up to ``position``: acknowledge through it."""
        done = [seq for seq in self._handed if seq <= position]
        if not done:
            return
        last = self._handed[max(done)]
        for seq in done:
            del self._handed[seq]
        try:
            self._loop.call(last.ack(), "acknowledgement")
        except StoreUnavailable as exc:
            # The commit stands; the store's position is the truth. Unacknowledged
            # messages come again after the ack wait and are skipped as already settled.
            log.warning("settlement_ack_failed", position=position, error=str(exc))

    def close(self) -> None:
        try:
            # Acknowledgements were flushed as they were sent; an outstanding pull may
            # still be parked at the server, so close rather than drain.
            self._loop.run(self._nc.close(), timeout=5)
        finally:
            self._loop.stop()
