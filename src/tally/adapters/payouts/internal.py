"""The internal rail: the counterparty holds an account in Tally, so paying it is one
ledger transfer from the payouts' clearing account to that account.

Idempotent by construction: the transfer's id is derived from the payout's idempotency
key, so a resubmission finds it already made (``EXISTS``) and answers CONFIRMED again.
The answer is definite at once; ``status`` reads the transfer back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from tally.kernel.clock import Clock
from tally.ledger.model import Account, AccountResult, Transfer, TransferRequest, TransferResult
from tally.payouts.model import clearing_account
from tally.payouts.rails import PayoutInstruction, RailAnswer, RailOutcome

NAME = "internal"


class LedgerWrites(Protocol):
    """The part of a ledger store (or the ledger service's store) the rail uses."""

    def create_accounts(
        self, accounts: Sequence[Account], now: datetime
    ) -> list[AccountResult]: ...

    def apply(
        self, submissions: Sequence[Sequence[TransferRequest]], now: datetime
    ) -> list[list[TransferResult]]: ...

    def get_transfer(self, transfer_id: str) -> Transfer | None: ...


def transfer_id(instruction: PayoutInstruction) -> str:
    return f"rail:{NAME}:{instruction.idempotency_key}"


class InternalRail:
    def __init__(
        self, ledger: LedgerWrites, clock: Clock, currencies: frozenset[str] | None = None
    ) -> None:
        """``currencies``: those it pays (None: any the ledger knows)."""
        self.ledger = ledger
        self.clock = clock
        self.currencies = currencies

    @property
    def name(self) -> str:
        return NAME

    def supports(self, currency: str) -> bool:
        return self.currencies is None or currency in self.currencies

    def submit(self, instructions: Sequence[PayoutInstruction]) -> Sequence[RailAnswer]:
        if not instructions:
            return []
        now = self.clock.now()
        self.ledger.create_accounts(
            [clearing_account(c) for c in sorted({i.currency for i in instructions})], now
        )
        requests = [
            [
                TransferRequest(
                    transfer_id(i),
                    clearing_account(i.currency).id,
                    i.account,
                    i.amount_minor,
                    i.currency,
                    "payout_internal",
                    event_ref=i.payout_id,
                    metadata={"payout": i.payout_id, "run": i.run_id},
                )
            ]
            for i in instructions
        ]
        results = self.ledger.apply(requests, now)
        out = []
        for i, [result] in zip(instructions, results, strict=True):
            if result.code.ok:
                out.append(RailAnswer(i.payout_id, RailOutcome.CONFIRMED, transfer_id(i)))
            else:
                out.append(RailAnswer(i.payout_id, RailOutcome.REJECTED, reason=result.code.slug))
        return out

    def status(self, instruction: PayoutInstruction) -> RailAnswer:
        found = self.ledger.get_transfer(transfer_id(instruction))
        if found is None:
            # Every submit answers at once, so a transfer not there was never made.
            return RailAnswer(instruction.payout_id, RailOutcome.REJECTED, reason="not made")
        return RailAnswer(instruction.payout_id, RailOutcome.CONFIRMED, found.id)
