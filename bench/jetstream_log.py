"""Appends and reads per second of the JetStream event log (a tiny script, not a test).

    .venv/bin/python bench/jetstream_log.py [--events 20000] [--batch 500]

Prints new appends/s, redeliveries/s (every key again: duplicates) and reads/s, on
throwaway streams that are deleted afterwards.
"""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from tally.adapters.nats.events import JetStreamEventLog, StreamNames
from tally.events.model import Channel, Event, EventKind
from tally.events.ports import Appended

DEFAULT_URL = "nats://127.0.0.1:4222"
DEFAULT_EVENTS = 20_000
DEFAULT_BATCH = 500  # events per append call (the gateway's batch size order)
READ_LIMIT = 1_000  # events per read call (the settlement worker's batch order)
OPERATORS = 8  # partitions the events spread over


def make_events(count: int) -> list[Event]:
    at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    base = Event(
        provider="acme",
        provider_tx_id="0",
        kind=EventKind.BET,
        round_id="r-0",
        operator="op0",
        player="p-1",
        game="acme-slot-1",
        game_type="slots",
        amount=1_000,
        currency="EUR",
        occurred_at=at,
        recorded_at=at,
        channel=Channel.MOBILE,
        region="eu",
        raw="{}",
    )
    return [
        replace(base, provider_tx_id=str(i), round_id=f"r-{i}", operator=f"op{i % OPERATORS}")
        for i in range(count)
    ]


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s ({count:,} in {seconds:.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8].upper()
    names = StreamNames(f"BENCH_{tag}", f"bench{tag.lower()}.events", f"BENCH_{tag}_C")
    events = make_events(args.events)
    log = JetStreamEventLog(args.url, names)
    try:
        for label, expected in (("appends", Appended.ACCEPTED), ("redeliveries", None)):
            started = time.perf_counter()
            outcomes: list[Appended] = []
            for i in range(0, len(events), args.batch):
                outcomes += [r.outcome for r in log.append(events[i : i + args.batch])]
            elapsed = time.perf_counter() - started
            assert all(o is (expected or Appended.DUPLICATE) for o in outcomes), label
            print(f"{label:>12}: {rate(len(events), elapsed)} batch {args.batch}")
        started = time.perf_counter()
        position, read = 0, 0
        while batch := log.read(position, READ_LIMIT):
            position, read = batch[-1][0], read + len(batch)
        elapsed = time.perf_counter() - started
        assert read == len(events) == log.head()
        print(f"{'reads':>12}: {rate(read, elapsed)} limit {READ_LIMIT}")
    finally:
        log.drop()
        log.close()


if __name__ == "__main__":
    main()
