"""Partner feeds over NATS: an operator's system sends a push to ``tally.feeds.<operator>``
and, when it asks for a reply, gets one result per item (as over HTTP).

Who may publish on which operator's subject is NATS's to enforce (account and subject
permissions); Tally takes the operator from the subject, never from the items, and
refuses items for any other operator.
"""

from __future__ import annotations

import json

import nats
from nats.aio.msg import Msg

from tally.adapters.nats.loop import LoopThread
from tally.ingest.feeds import FeedRefused, FeedService
from tally.kernel.errors import StoreUnavailable

FEED_SUBJECTS = "tally.feeds"  # prefix: one subject per operator under it
QUEUE_GROUP = "tally-feeds"  # several listeners share the work


class NatsFeedListener:
    def __init__(self, url: str, feeds: FeedService, prefix: str = FEED_SUBJECTS) -> None:
        self.feeds = feeds
        self.prefix = prefix
        self.received = 0
        self._loop = LoopThread("nats-feeds")
        try:
            self._nc = self._loop.run(nats.connect(url, connect_timeout=3))
            self._loop.run(self._nc.subscribe(f"{prefix}.*", queue=QUEUE_GROUP, cb=self._on))
            self._loop.run(self._nc.flush())
        except Exception as exc:
            self._loop.stop()
            raise StoreUnavailable(f"NATS at {url}: {exc}") from exc

    async def _on(self, msg: Msg) -> None:
        operator = msg.subject[len(self.prefix) + 1 :]
        self.received += 1
        # The push is taken on this loop's thread: the log's append is synchronous, and a
        # feed is bulk, so one push at a time per listener is the intended pace.
        try:
            results = [r.as_dict() for r in self.feeds.push(operator, msg.data, channel="nats")]
            answer: object = {"results": results}
        except FeedRefused as exc:
            answer = {"error": {"code": "feed_refused", "message": str(exc)}}
        if msg.reply:
            await msg.respond(json.dumps(answer, separators=(",", ":")).encode())

    def close(self) -> None:
        try:
            self._loop.run(self._nc.drain(), timeout=5)
        finally:
            self._loop.stop()
