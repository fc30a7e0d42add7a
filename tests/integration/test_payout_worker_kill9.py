"""kill -9 of the payout worker at random instants during a run, 20 times and more,
restarted each time: afterwards every payout is in one final or resumable state that
agrees with the ledger, and nothing is paid twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tally.audit.service import Auditing
from tally.ledger.model import Account, OwnerKind, PendingStatus, TransferRequest
from tally.payouts.model import Counterparty, CounterpartyKind, PayoutState, RunScope
from tests.support.payout_worker_proc import services
from tests.support.payouts import expense_account, payable

ROOT = Path(__file__).resolve().parents[2]
PARTIES = 400
KILLS = 22


def _setup(path: Path) -> str:
    service, ledger, audit = services(str(path))
    items = [payable(f"com:a{i}", f"partner:a{i}", "EUR", 1_000 + i) for i in range(PARTIES)]
    # Some pay accounts that do not exist: the rail refuses them, they fail and release.
    wallets = [
        Account(f"partner:a{i}:wallet:EUR", OwnerKind.PARTNER, f"a{i}", "EUR", "wallet")
        for i in range(PARTIES)
        if i % 10
    ]
    accounts = {a.id: a for a in wallets}
    for p in items:
        accounts[p.account_id] = Account(
            p.account_id, OwnerKind.PARTNER, p.counterparty[8:], "EUR", "commission_payable"
        )
    accounts[expense_account("EUR").id] = expense_account("EUR")
    now = service.clock.now()
    ledger.create_accounts(list(accounts.values()), now)
    [results] = ledger.apply(
        [
            [
                TransferRequest(
                    f"accrue:{p.id}",
                    expense_account("EUR").id,
                    p.account_id,
                    p.amount,
                    "EUR",
                    "accrual",
                )
                for p in items
            ]
        ],
        now,
    )
    assert all(r.code.ok for r in results)
    maker = Auditing(audit, "user:maker", "test")
    for i in range(PARTIES):
        service.register_counterparty(
            Counterparty(
                f"partner:a{i}",
                CounterpartyKind.PARTNER,
                f"a{i}",
                f"a{i}",
                "internal",
                f"partner:a{i}:wallet:EUR",
            ),
            maker,
        )
    service.payables.items = items  # type: ignore[attr-defined]
    run = service.build_run(RunScope("all"), maker)
    service.store.close()
    audit.close()
    ledger.close()
    return run.id


def _spawn(path: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.payout_worker_proc", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _check(path: Path, run_id: str, *, final: bool) -> dict[str, int]:
    service, ledger, audit = services(str(path))
    try:
        payouts = service.payouts_of_run(run_id)
        assert len(payouts) == PARTIES
        counts: dict[str, int] = {}
        for p in payouts:
            counts[p.state.value] = counts.get(p.state.value, 0) + 1
            reserve = ledger.get_transfer(f"payout:{p.id}:reserve:0")
            paid = ledger.get_transfer(f"rail:internal:{p.idempotency_key}")
            wallet = ledger.balance(p.account)
            if p.state is PayoutState.REQUESTED:
                assert reserve is None and paid is None
            elif p.state is PayoutState.RESERVED:
                assert reserve is not None and reserve.status is PendingStatus.PENDING
            elif p.state is PayoutState.CONFIRMED:
                assert reserve is not None and reserve.status is PendingStatus.POSTED
                assert paid is not None and wallet is not None and wallet.net_credit == p.amount
                assert ledger.balance(p.legs[0].account_id).net_credit == 0
            elif p.state is PayoutState.FAILED:
                assert reserve is not None and reserve.status is PendingStatus.VOIDED
                assert paid is None and wallet is None
                assert ledger.balance(p.legs[0].account_id).net_credit == p.amount
            else:
                raise AssertionError(f"{p.id} is {p.state}")
            # Never paid twice: a wallet holds at most its one payment.
            assert wallet is None or wallet.net_credit in (0, p.amount)
        for cur, b in ledger.totals_by_currency().items():
            assert (b.debits_posted, b.debits_pending) == (b.credits_posted, b.credits_pending), cur
        if final:
            assert set(counts) <= {"confirmed", "failed"}
        return counts
    finally:
        service.store.close()
        audit.close()
        ledger.close()


@pytest.mark.slow
def test_the_payout_worker_killed_at_random_instants_resumes_without_doubling(
    tmp_path: Path,
) -> None:
    path = tmp_path / "payouts.sqlite"
    run_id = _setup(path)
    rng = random.Random(20261208)
    killed = 0
    attempts = 0
    midway = 0  # checks that found the run partly paid: the kill landed inside it
    while killed < KILLS and attempts < 200:
        attempts += 1
        proc = _spawn(path)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        # Let it take 0 to 2 steps, then kill it at a random instant inside the next one
        # (steps are counted, not timed, so a fast machine gets as many kills as a slow one).
        for _ in range(rng.randint(0, 2)):
            if proc.stdout.readline().strip() != "step":
                break
        time.sleep(rng.uniform(0.0, 0.005))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        counts = _check(path, run_id, final=False)
        if counts.get("confirmed", 0) and counts.get("requested", 0):
            midway += 1
        if counts.get("confirmed", 0) + counts.get("failed", 0) == PARTIES:
            break
    assert killed >= 20, f"only {killed} kills landed mid-run ({counts})"
    assert midway >= 20, midway
    proc = _spawn(path)
    out, _ = proc.communicate(timeout=300)
    assert "drained" in out
    counts = _check(path, run_id, final=True)
    assert counts == {"confirmed": PARTIES - PARTIES // 10, "failed": PARTIES // 10}
