"""Partner feeds over a NATS subject: one result per item in the reply, events in the log."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import nats

from tally.adapters.memory.quarantine import MemoryInputQuarantine
from tally.adapters.nats.feeds import NatsFeedListener
from tally.adapters.sqlite.events import SqliteEventLog
from tally.ingest.feeds import FeedService
from tally.kernel.clock import FixedClock
from tests.conftest import NATS_URL, require_nats


def item(tx: str, operator: str = "op1") -> dict[str, object]:
    return {
        "schema_version": 1,
        "provider": "acme",
        "provider_tx_id": tx,
        "kind": "bet",
        "operator": operator,
        "player": "p1",
        "game_type": "slots",
        "amount": "1.00",
        "currency": "EUR",
        "occurred_at": "2026-03-02T12:00:00+00:00",
        "channel": "api",
    }


async def request(subject: str, body: bytes) -> dict[str, object]:
    nc = await nats.connect(NATS_URL)
    try:
        reply = await nc.request(subject, body, timeout=5)
    finally:
        await nc.close()
    answer: dict[str, object] = json.loads(reply.data)
    return answer


def test_a_push_on_the_operators_subject_is_answered_item_by_item(tmp_path: Path) -> None:
    require_nats()
    log = SqliteEventLog(tmp_path / "tally.sqlite")
    quarantine = MemoryInputQuarantine()
    feeds = FeedService(log, quarantine, FixedClock(datetime(2026, 3, 2, tzinfo=UTC)))
    prefix = f"t{uuid.uuid4().hex[:8]}.feeds"
    listener = NatsFeedListener(NATS_URL, feeds, prefix=prefix)
    try:
        body = json.dumps([item("t1"), item("t2", operator="op2"), item("t1")]).encode()
        answer = asyncio.run(request(f"{prefix}.op1", body))
        outcomes = [r["outcome"] for r in answer["results"]]  # type: ignore[index, union-attr]
        assert outcomes == ["accepted", "rejected", "duplicate"]
        assert [e.key for _, e in log.read(0, 10)] == ["feed:op1:acme:t1:bet"]
        assert [e.channel.value for _, e in log.read(0, 10)] == ["api"]
        assert [q.refused.channel for q in quarantine.entries().items] == ["op1 (nats)"]
        refused = asyncio.run(request(f"{prefix}.op1", b"[not json"))
        assert refused["error"]["code"] == "feed_refused"  # type: ignore[index]
    finally:
        listener.close()
        log.close()
