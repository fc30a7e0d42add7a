"""What a long-running Tally process does once it has built what it keeps."""

from __future__ import annotations

import gc
import sys

# Python collects its youngest objects every 700 allocations and walks the whole heap
# whenever enough objects have lived on. A writer makes and drops a transfer's objects by
# the thousand per batch, and its caches (accounts, balances, configuration) are large
# and live as long as the process: with the defaults, 400,000 transfers cost 23 walks of
# that heap and 10-25% of the ledger's throughput (ledger benchmark, 2-core machine).
# The youngest generation is collected once 500,000 more objects live than before, more
# than one batch of 10,000 transfers keeps alive at once (about 400,000): most of a
# batch's objects are freed before a collection would walk them. At 50,000, 1,000,000
# transfers cost 0.73 s of collections, one pause up to 39 ms; at 500,000, 0.05 s,
# pauses up to 1 ms.
GC_THRESHOLDS = (500_000, 20, 10)
# A process answering calls one by one (the wallet gateway), where a pause is a slow
# answer, keeps the earlier 50,000 until the larger one is shown not to lengthen its
# tail: gateway runs at 1,500 callbacks/s gave p99 57-164 ms with 50,000 and 70-180 ms
# with 500,000 (four runs each, too noisy to prefer either).
PROMPT_GC_THRESHOLDS = (50_000, 20, 10)


def settle_heap(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Freeze what start-up built (the collector no longer walks it) and collect young
    objects less often. Call once, after wiring, in a server or worker process."""
    gc.freeze()
    gc.set_threshold(*thresholds)


# How long a thread may hold the interpreter lock while others wait for it. A gateway
# passes every callback between threads four times (event loop, batches, ledger writer,
# event-log appender), so each hand-off waiting out Python's default 5 ms added up: at
# 1,500 callbacks/s p99 was 87 ms with 5 ms and 23 ms with 1 ms, at 2,500/s 309 and 62 ms
# (gateway benchmark, 2-core machine, same throughput).
HANDOFF_INTERVAL_S = 0.001


def hand_off_promptly() -> None:
    """Let a thread that waits for the interpreter lock have it within a millisecond.
    For processes whose requests pass between threads (the wallet gateway)."""
    sys.setswitchinterval(HANDOFF_INTERVAL_S)
