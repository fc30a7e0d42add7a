"""The PSP rail against the real fake PSP over the network, with every fault.

Whatever goes wrong, the PSP's own ledger must never hold a payout twice; an answer that
proves nothing is UNKNOWN (never REJECTED), and ``status`` then finds the truth.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from tally.adapters.payouts.psp import PspRail
from tally.kernel.limits import RailLimits
from tally.payouts.rails import PayoutInstruction, RailAnswer, RailOutcome
from tally.simulation.psp import FakePsp, PspFaults
from tests.support.webhook_receiver import WebhookReceiver

SECRET = "whsec-test-rails"
C, R, S, U = RailOutcome.CONFIRMED, RailOutcome.REJECTED, RailOutcome.SUBMITTED, RailOutcome.UNKNOWN
# Generous for ordinary answers (the machine is shared); the timeout faults hold their
# answer back far longer than this.
LIMITS = RailLimits(psp_connect_timeout_s=2.0, psp_read_timeout_s=2.0)
HANG_S = 4.0


def payout(n: int, destination: str = "", amount: int = 0) -> PayoutInstruction:
    return PayoutInstruction(
        f"payout-{n}",
        f"idem-{n}",
        "run-1",
        f"partner-{n}",
        f"Partner {n}",
        destination or f"payee-{n}",
        "",
        amount or 1_000 + n,
        "EUR",
        f"commission {n}",
    )


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as served:
        yield served


@pytest.fixture
def psp_with(receiver: WebhookReceiver) -> Iterator[Callable[..., tuple[FakePsp, PspRail]]]:
    started: list[tuple[FakePsp, PspRail]] = []

    def start(
        faults: PspFaults | None = None, seed: int = 7, limits: RailLimits = LIMITS
    ) -> tuple[FakePsp, PspRail]:
        psp = FakePsp(
            seed=seed,
            faults=faults,
            webhook_url=receiver.url,
            webhook_secret=SECRET,
            api_key="sk-test",
        ).start()
        rail = PspRail(psp.url, api_key="sk-test", limits=limits)
        started.append((psp, rail))
        return psp, rail

    yield start
    for psp, rail in started:
        rail.close()
        psp.stop()


def test_payouts_are_submitted_then_confirmed_by_signed_webhooks(psp_with, receiver) -> None:
    psp, rail = psp_with()
    batch = [payout(n) for n in range(20)]
    answers = rail.submit(batch)
    assert [a.outcome for a in answers] == [S] * 20, answers
    assert [a.payout_id for a in answers] == [i.payout_id for i in batch]
    wait_for(lambda: len(receiver.snapshot()) == 20)
    assert {a.payout_id: a.outcome for a in receiver.snapshot()} == {i.payout_id: C for i in batch}
    lines = psp.state.ledger_lines()
    assert sorted((line.idempotency_key, line.amount) for line in lines) == sorted(
        (i.idempotency_key, i.amount_minor) for i in batch
    )
    assert [rail.status(i).outcome for i in batch] == [C] * 20


def test_a_refusal_is_rejected_and_nothing_is_paid(psp_with, receiver) -> None:
    psp, rail = psp_with(PspFaults(reject=1.0))
    blocked, rejected = rail.submit([payout(1, destination="blocked-payee"), payout(2)])
    assert (blocked.outcome, rejected.outcome) == (R, R)
    assert "destination_blocked" in blocked.reason and "destination_rejected" in rejected.reason
    # The refusal is kept under the key: asking again gives the same answer.
    assert rail.submit([payout(2)])[0].outcome is R
    assert rail.status(payout(2)).outcome is R
    time.sleep(0.2)
    assert psp.state.ledger_lines() == [] and receiver.snapshot() == []


def test_a_5xx_is_unknown_never_rejected_and_a_resubmission_pays_once(psp_with, receiver) -> None:
    psp, rail = psp_with(PspFaults(error_5xx=1.0))
    (answer,) = rail.submit([payout(1)])
    assert answer.outcome is U and "503" in answer.reason
    found = rail.status(payout(1))
    assert found.outcome is U and found.reason.startswith("not_found")
    psp.app.faults = PspFaults()  # the PSP recovers
    assert rail.submit([payout(1)])[0].outcome is S
    assert rail.submit([payout(1)])[0].outcome in (S, C)
    wait_for(lambda: len(psp.state.ledger_lines()) == 1)
    assert psp.state.paid_twice() == []


def test_a_timeout_is_unknown_and_status_then_finds_the_truth(psp_with, receiver) -> None:
    psp, rail = psp_with(PspFaults(timeout=1.0, hang_s=HANG_S))
    started = time.monotonic()
    (answer,) = rail.submit([payout(1)])
    assert answer.outcome is U and answer.reason.startswith("timeout")
    assert time.monotonic() - started < HANG_S  # the client gave up; the PSP had taken it
    wait_for(lambda: rail.status(payout(1)).outcome is C)
    assert len(psp.state.ledger_lines()) == 1
    # A retry after the timeout is the same payout.
    psp.app.faults = PspFaults()
    assert rail.submit([payout(1)])[0] == RailAnswer(
        "payout-1", C, answer.rail_reference or rail.status(payout(1)).rail_reference
    )
    assert len(psp.state.ledger_lines()) == 1


def test_an_unknown_result_took_effect_and_status_says_so(psp_with, receiver) -> None:
    psp, rail = psp_with(PspFaults(unknown_result=1.0))
    (answer,) = rail.submit([payout(1)])
    assert answer.outcome is U and "500" in answer.reason
    wait_for(lambda: rail.status(payout(1)).outcome is C)
    wait_for(lambda: len(receiver.snapshot()) == 1)
    assert len(psp.state.ledger_lines()) == 1


def test_the_same_key_with_another_body_is_unknown_and_pays_only_the_first(psp_with) -> None:
    psp, rail = psp_with()
    first = payout(1)
    assert rail.submit([first])[0].outcome is S
    (other,) = rail.submit([replace(first, amount_minor=999_999)])
    assert other.outcome is U and "idempotency_key_reused" in other.reason
    wait_for(lambda: len(psp.state.ledger_lines()) == 1)
    time.sleep(0.1)
    assert [line.amount for line in psp.state.ledger_lines()] == [first.amount_minor]


def test_many_submits_with_one_key_at_once_pay_once(psp_with) -> None:
    psp, rail = psp_with(PspFaults(settle_delay_s=0.05))
    barrier = threading.Barrier(40)
    answers: list[RailAnswer] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        got = rail.submit_one(payout(1))
        with lock:
            answers.append(got)

    threads = [threading.Thread(target=send) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 40
    assert {a.outcome for a in answers} <= {S, C, U}
    references = {a.rail_reference for a in answers if a.outcome is not U}
    assert len(references) == 1  # one payout at the PSP, whoever asked
    assert len(psp.state.payouts) == 1
    wait_for(lambda: len(psp.state.ledger_lines()) == 1)
    time.sleep(0.1)
    assert len(psp.state.ledger_lines()) == 1 and psp.state.paid_twice() == []


def test_duplicate_and_delayed_webhooks_give_the_same_answers(psp_with, receiver) -> None:
    psp, rail = psp_with(PspFaults(duplicate_webhook=1.0, webhook_delay_max_s=0.05, fail=0.5))
    batch = [payout(n) for n in range(10)]
    rail.submit(batch)
    wait_for(lambda: len(receiver.snapshot()) == 20)
    got: dict[str, set[RailAnswer]] = {}
    for answer in receiver.snapshot():
        got.setdefault(answer.payout_id, set()).add(answer)
    assert sorted(got) == sorted(i.payout_id for i in batch)
    assert all(len(answers) == 1 for answers in got.values())  # the copies agree
    paid = {line.idempotency_key for line in psp.state.ledger_lines()}
    for instruction in batch:
        (answer,) = got[instruction.payout_id]
        assert (answer.outcome is C) == (instruction.idempotency_key in paid)
        if answer.outcome is R:
            assert answer.reason in ("account_closed", "no_account", "account_frozen")
    assert psp.state.paid_twice() == []


def test_forged_webhooks_are_refused_and_nothing_is_taken(receiver) -> None:
    with FakePsp(seed=3, webhook_url=receiver.url, webhook_secret="not-the-secret") as psp:
        rail = PspRail(psp.url, limits=LIMITS)
        try:
            rail.submit([payout(1), payout(2)])
            wait_for(lambda: len(receiver.refusals) >= 2)
        finally:
            rail.close()
    assert receiver.snapshot() == []
    assert set(receiver.refusals) == {"forged"}


def test_lost_webhooks_leave_status_to_find_the_truth(psp_with, receiver) -> None:
    psp, rail = psp_with(PspFaults(lost_webhook=1.0))
    batch = [payout(n) for n in range(5)]
    rail.submit(batch)
    wait_for(lambda: all(rail.status(i).outcome is C for i in batch))
    assert receiver.snapshot() == [] and psp.state.webhooks["lost"] == 5


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_every_fault_at_once_never_pays_twice_and_every_payout_ends_known(
    psp_with, receiver, seed: int
) -> None:
    """A saga's loop in small: submit; on UNKNOWN ask status; on not_found resubmit with
    the same key; until each payout is CONFIRMED or REJECTED."""
    faults = replace(PspFaults.all_on(), hang_s=HANG_S)
    # Small batches: the faults act per request, so many requests meet many faults.
    psp, rail = psp_with(faults, seed=seed, limits=replace(LIMITS, psp_batch_max=3))
    batch = [payout(n) for n in range(60)]
    final: dict[str, RailAnswer] = {}
    pending = list(batch)
    outcomes: Counter[RailOutcome] = Counter()
    deadline = time.monotonic() + 120
    answers = rail.submit(pending)
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} payouts never settled"
        still: list[PayoutInstruction] = []
        resubmit: list[PayoutInstruction] = []
        for instruction, answer in zip(pending, answers, strict=True):
            outcomes[answer.outcome] += 1
            if answer.outcome in (C, R):
                final[instruction.payout_id] = answer
                continue
            truth = rail.status(instruction)
            if truth.outcome in (C, R):
                final[instruction.payout_id] = truth
            elif truth.outcome is U and truth.reason.startswith("not_found"):
                resubmit.append(instruction)
            else:
                still.append(instruction)
        time.sleep(0.05)
        answers = list(rail.submit(resubmit)) + [rail.status(i) for i in still]
        pending = resubmit + still
    assert outcomes[U] > 0  # the faults did happen
    assert len(final) == 60
    paid = Counter(line.idempotency_key for line in psp.state.ledger_lines())
    assert psp.state.paid_twice() == []
    for instruction in batch:
        answer = final[instruction.payout_id]
        assert paid[instruction.idempotency_key] == (1 if answer.outcome is C else 0)
    # Webhooks that arrived agree with the final word on their payout.
    wait_for(lambda: psp.state.webhooks["sent"] + psp.state.webhooks["lost"] >= 1)
    for answer in receiver.snapshot():
        assert answer.outcome is final[answer.payout_id].outcome


def test_a_batch_answers_each_payout_as_a_single_request_would(psp_with) -> None:
    psp, rail = psp_with()
    first = payout(1)
    taken = rail.submit_one(first)
    assert taken.outcome is S
    batch = [
        payout(0),
        replace(first, amount_minor=5),  # the key is taken by another payout
        payout(2, destination="blocked-2"),
        first,  # a replay
    ]
    answers = rail.submit_batch(batch)
    assert [a.outcome for a in answers[:3]] == [S, U, R]
    # The replay is the first payout (paid by now, or still pending).
    assert answers[3].outcome in (S, C) and answers[3].rail_reference == taken.rail_reference
    assert "idempotency_key_reused" in answers[1].reason
    assert "destination_blocked" in answers[2].reason
    wait_for(lambda: len(psp.state.ledger_lines()) == 2)
    time.sleep(0.1)
    assert sorted(line.amount for line in psp.state.ledger_lines()) == [1_000, 1_001]


def test_overlapping_batches_sent_at_once_pay_each_payout_once(psp_with) -> None:
    psp, rail = psp_with(PspFaults(settle_delay_s=0.02))
    everyone = [payout(n) for n in range(200)]
    barrier = threading.Barrier(8)

    def send(offset: int) -> None:
        barrier.wait()
        rail.submit_batch(everyone[offset : offset + 100])

    threads = [threading.Thread(target=send, args=(n * 13,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = {i.idempotency_key for n in range(8) for i in everyone[n * 13 : n * 13 + 100]}
    wait_for(lambda: len(psp.state.ledger_lines()) == len(sent))
    time.sleep(0.1)
    assert len(psp.state.ledger_lines()) == len(sent) and psp.state.paid_twice() == []


def test_the_fake_psp_runs_as_a_command(tmp_path) -> None:
    import os
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TALLY_PSP_API_KEY": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "tally.simulation.psp", "--port", str(port), "--seed", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in line, line
        rail = PspRail(f"http://127.0.0.1:{port}", limits=LIMITS)
        try:
            assert rail.submit([payout(1)])[0].outcome is S
            wait_for(lambda: rail.status(payout(1)).outcome is C)
        finally:
            rail.close()
        ledger = httpx.get(f"http://127.0.0.1:{port}/_sim/ledger").json()
        assert [line["idempotency_key"] for line in ledger["lines"]] == ["idem-1"]
        assert ledger["paid_twice"] == []
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
