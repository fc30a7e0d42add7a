"""The payout worker as a process of its own on a SQLite file, for the kill -9 test:
``python -m tests.support.payout_worker_proc FILE`` steps until nothing is due (printing
``step`` after each), then prints ``drained`` and exits. It pays through the internal
rail (in the same file), so what it paid survives the kill as the payouts' state does."""

from __future__ import annotations

import sys

from tally.adapters.payouts.internal import InternalRail
from tally.adapters.sqlite.backoffice import SqliteBackofficeStore
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.adapters.sqlite.payouts import SqlitePayoutStore
from tally.audit.chain import Sealer
from tally.audit.service import Auditing
from tally.kernel.clock import SystemClock
from tally.kernel.limits import PayoutLimits
from tally.payouts.service import PayoutService, PayoutWorker
from tests.support.payouts import Codes, RecordingAlerts, StaticPayables


def services(
    path: str, step: int = 20
) -> tuple[PayoutService, SqliteLedgerStore, SqliteBackofficeStore]:
    clock = SystemClock()
    ledger = SqliteLedgerStore(path)
    audit = SqliteBackofficeStore(path, Sealer(bytes(32)))
    rail = InternalRail(ledger, clock)
    service = PayoutService(
        SqlitePayoutStore(ledger),
        StaticPayables(),
        {rail.name: rail},
        clock,
        RecordingAlerts(),
        second_factor=Codes(),
        limits=PayoutLimits(step_max_payouts=step),
        system=Auditing(audit, "system:payouts", "worker"),
    )
    return service, ledger, audit


def main() -> None:
    service, _, _ = services(sys.argv[1], step=5)
    worker = PayoutWorker(service)
    print("ready", flush=True)
    # A line per step, so the test can kill within the run whatever the machine's speed.
    while worker.step():
        print("step", flush=True)
    print("drained", flush=True)


if __name__ == "__main__":
    main()
