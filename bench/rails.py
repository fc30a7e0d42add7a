"""The payout rails' benchmark (ADR 0022): what one rail takes per second.

- psp: ``PspRail.submit`` of a run's payouts against the fake PSP on a local port (batch
  requests, as the rail sends them), until the PSP's own ledger holds every one of them
  paid exactly once; beside a naive client that sends one ``POST /payouts`` per payout,
  one at a time.
- webhooks: ``read_webhook`` (size, signature, timestamp window, JSON) on signed payout
  events, in process: what the API's receiver spends per webhook.
- bank file: ``build_pain001`` of one run of SEPA payments (schwifty checks, sepaxml's
  block, the whole file validated against the ISO XSD); beside sepaxml alone building and
  validating the same payments (the library's own cost, no checks of ours).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from typing import Any

from tally.adapters.payouts.bank_file import Debtor, build_pain001
from tally.adapters.payouts.psp import PspRail
from tally.adapters.payouts.webhooks import read_webhook
from tally.kernel.limits import RailLimits
from tally.payouts.rails import PayoutInstruction
from tally.simulation.psp import FakePsp, sign

TARGET_PAYOUTS_PER_S = 5_000  # issue 28: a run submitted at 5,000 payouts/s or more
SETTLE_WAIT_S = 120.0
SECRET = "whsec-bench"
NOW = datetime(2026, 12, 8, tzinfo=UTC)
DEBTOR = Debtor("Tally Operations GmbH", "DE89370400440532013000", "COBADEFFXXX")
IBANS = ("DE02120300000000202051", "FR1420041010050500013M02606", "NL91ABNA0417164300")


def _payouts(count: int, tag: str) -> list[PayoutInstruction]:
    return [
        PayoutInstruction(
            f"{tag}-{n}", f"{tag}-key-{n}", "bench-run", f"partner-{n}", f"Partner {n}",
            IBANS[n % len(IBANS)], "", 100 + n % 10_000, "EUR", f"commission {n}",
        )
        for n in range(count)
    ]  # fmt: skip


def psp(payouts: int, naive_sample: int) -> dict[str, Any]:
    with FakePsp(seed=1) as server:
        rail = PspRail(server.url)
        batch = _payouts(payouts, "b")
        started = time.perf_counter()
        answers = rail.submit(batch)
        submitted_s = time.perf_counter() - started
        deadline = time.monotonic() + SETTLE_WAIT_S
        while len(server.state.ledger_lines()) < payouts and time.monotonic() < deadline:
            time.sleep(0.01)
        settled_s = time.perf_counter() - started
        paid = len(server.state.ledger_lines())
        twice = server.state.paid_twice()
        rail.close()
        naive_rail = PspRail(server.url, limits=RailLimits(psp_batch_max=1, psp_concurrency=1))
        sample = _payouts(naive_sample, "n")
        started = time.perf_counter()
        for instruction in sample:
            naive_rail.submit_one(instruction)
        naive_s = time.perf_counter() - started
        naive_rail.close()
    assert paid == payouts and not twice, (paid, twice)
    assert all(a.outcome == "submitted" for a in answers)
    return {
        "payouts": payouts,
        "payouts_per_s": payouts / submitted_s,
        "paid_per_s": payouts / settled_s,
        "paid_twice": len(twice),
        "naive": {"payouts": naive_sample, "payouts_per_s": naive_sample / naive_s},
    }


def webhooks(count: int) -> dict[str, Any]:
    stamp = int(NOW.timestamp())
    signed = []
    for n in range(count):
        body = json.dumps(
            {"id": f"evt_{n}", "type": "payout.paid", "created": stamp,
             "data": {"id": f"po_{n}", "status": "paid", "metadata": {"payout_id": f"p-{n}"}}},
            separators=(",", ":"),
        ).encode()  # fmt: skip
        headers = {"psp-timestamp": str(stamp), "psp-signature": sign(SECRET, stamp, body)}
        signed.append((headers, body))
    started = time.perf_counter()
    for headers, body in signed:
        read_webhook(headers, body, SECRET, NOW)
    elapsed = time.perf_counter() - started
    return {"webhooks": count, "webhooks_per_s": count / elapsed}


def bank_file(payments: int) -> dict[str, Any]:
    from sepaxml import SepaTransfer

    batch = _payouts(payments, "f")
    started = time.perf_counter()
    built = build_pain001("bench-run", batch, DEBTOR, NOW, date(2026, 12, 9))
    elapsed = time.perf_counter() - started
    started = time.perf_counter()
    transfer = SepaTransfer(
        {"name": DEBTOR.name, "IBAN": DEBTOR.iban, "BIC": DEBTOR.bic, "batch": True,
         "currency": "EUR"},
        schema="pain.001.001.03",
    )  # fmt: skip
    for p in batch:
        transfer.add_payment(
            {"name": p.beneficiary_name, "IBAN": p.account, "amount": p.amount_minor,
             "execution_date": date(2026, 12, 9), "description": p.reference,
             "endtoend_id": p.payout_id}
        )  # fmt: skip
    transfer.export(validate=True)
    naive = time.perf_counter() - started
    return {
        "payments": payments,
        "payments_per_s": payments / elapsed,
        "file_mb": len(built.content) / 1e6,
        "sepaxml_alone": {"payments_per_s": payments / naive},
    }
