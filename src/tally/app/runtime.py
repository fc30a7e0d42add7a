"""What a long-running Tally process does once it has built what it keeps."""

from __future__ import annotations

import gc

# Python collects its youngest objects every 700 allocations and walks the whole heap
# whenever enough objects have lived on. A writer makes and drops a transfer's objects by
# the thousand per batch, and its caches (accounts, balances, configuration) are large
# and live as long as the process: with the defaults, 400,000 transfers cost 23 walks of
# that heap and 10-25% of the ledger's throughput (ledger benchmark, 2-core machine).
GC_THRESHOLDS = (50_000, 20, 10)


def settle_heap() -> None:
    """Freeze what start-up built (the collector no longer walks it) and collect young
    objects less often. Call once, after wiring, in a server or worker process."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
