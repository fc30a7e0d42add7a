"""An idle embedded ledger writer: its expiry ticks write nothing unless something is due.

Several processes share one SQLite file in embedded mode (the API, a gateway, a
settlement worker). A tick that wrote an empty transaction would sync the file twice a
second per process and, by moving the file's ledger generation, make every other
process's ledger drop its caches each time."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.kernel.clock import FixedClock
from tally.kernel.limits import LedgerLimits
from tally.ledger.model import PendingStatus, ResultCode, TransferKind
from tally.ledger.service import LedgerService
from tests.conftest import START
from tests.support.pipeline import HOUSE, WALLET, move
from tests.support.waiting import wait_for

TICK_S = 0.02


def test_idle_ticks_write_nothing_and_a_due_pending_transfer_still_expires(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tally.sqlite"
    clock = FixedClock(START)
    store = SqliteLedgerStore(path)
    watcher = sqlite3.connect(path)  # data_version moves when another connection commits
    try:
        with LedgerService(store, clock, LedgerLimits(expiry_tick_s=TICK_S)) as ledger:
            ledger.create_accounts([WALLET, *HOUSE])
            (fund,) = ledger.transfer([move("fund", "h0", "w", 100)])
            (hold,) = ledger.transfer(
                [move("hold", "w", "h1", 40, kind=TransferKind.PENDING, timeout_s=60)]
            )
            assert (fund.code, hold.code) == (ResultCode.OK, ResultCode.OK)
            store.wait_for_history_index()
            (before,) = watcher.execute("PRAGMA data_version").fetchone()
            commits = ledger.stats.batches
            time.sleep(25 * TICK_S)  # idle: some 25 ticks
            assert watcher.execute("PRAGMA data_version").fetchone() == (before,)
            assert ledger.stats.batches == commits  # a tick is not counted as a commit

            clock.advance(timedelta(seconds=61))  # the hold is due: the next tick expires it

            def expired() -> bool:
                found = store.get_transfer("hold")
                return found is not None and found.status is PendingStatus.EXPIRED

            wait_for("the hold to expire", expired, step=TICK_S)
            assert watcher.execute("PRAGMA data_version").fetchone() != (before,)
            balance = store.balance("w")
            assert balance is not None and balance.debits_pending == 0
    finally:
        watcher.close()
        store.close()
