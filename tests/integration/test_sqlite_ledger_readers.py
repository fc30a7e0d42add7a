"""The embedded ledger lends read connections per query, not per thread.

A server's worker threads come and go (anyio retires an idle one after 10 s); a
connection per thread stayed open after its thread was gone, one more for every thread
that ever read.
"""

from __future__ import annotations

import threading
from pathlib import Path

from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.ledger.model import Account, OwnerKind
from tests.conftest import START


def test_threads_that_come_and_go_share_the_read_connections(tmp_path: Path) -> None:
    store = SqliteLedgerStore(tmp_path / "ledger.sqlite")
    try:
        store.create_accounts([Account("a", OwnerKind.PLAYER, "p", "EUR", "wallet")], START)
        seen: list[object] = []
        for _ in range(30):  # one short-lived thread after another, as a pool retires them
            thread = threading.Thread(target=lambda: seen.append(store.balance("a")))
            thread.start()
            thread.join()
        assert len(seen) == 30 and all(b is not None for b in seen)
        assert len(store._readers) == 1  # the pool is what is under test

        # Readers at the same time each get one; afterwards they are all idle again.
        barrier = threading.Barrier(4)

        def read_together() -> None:
            barrier.wait()
            for _ in range(200):
                store.balances_by_owner(OwnerKind.PLAYER, "p")

        threads = [threading.Thread(target=read_together) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 1 <= len(store._readers) <= 4
        assert len(store._idle) == len(store._readers)
    finally:
        store.close()
