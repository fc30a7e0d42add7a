"""The rail port: how a payout leaves Tally, and what comes back.

Every rail (an ISO 20022 bank file, an HTTP payment provider, an internal ledger
transfer) takes :class:`PayoutInstruction` values and answers with :class:`RailAnswer`
values, at once from ``submit`` and ``status``, and later through the rail's own inbound
path (a signed webhook, a ``pain.002`` status report), which hands the same values to the
payouts service. The saga never voids on ``UNKNOWN``: it asks ``status`` first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class RailOutcome(StrEnum):
    SUBMITTED = "submitted"  # taken by the rail; the result follows (webhook, pain.002)
    CONFIRMED = "confirmed"  # paid: the reservation posts
    REJECTED = "rejected"  # definitely not paid: the reservation voids
    UNKNOWN = "unknown"  # no definite answer (timeout, 5xx, lost reply): ask ``status``


@dataclass(frozen=True, slots=True)
class PayoutInstruction:
    """One payment a rail is asked to make; ``idempotency_key`` is derived from the
    payout, so a resubmission after a crash is the same payment, never a second one.
    ``account`` is an IBAN for a bank rail, a PSP's payee id, or a Tally account."""

    payout_id: str
    idempotency_key: str
    run_id: str
    counterparty: str
    beneficiary_name: str
    account: str
    bic: str
    amount_minor: int
    currency: str
    reference: str

    def __post_init__(self) -> None:
        if self.amount_minor <= 0:
            raise ValueError(f"payout {self.payout_id}: a payout amount must be positive")


@dataclass(frozen=True, slots=True)
class RailAnswer:
    """What a rail said of one payout; ``rail_reference`` is the rail's own id for it
    (empty when it gave none) and ``reason`` its words when it refused or failed."""

    payout_id: str
    outcome: RailOutcome
    rail_reference: str = ""
    reason: str = ""


class Rail(Protocol):
    @property
    def name(self) -> str:
        """The rail's name in configuration and in the payout's history."""

    def supports(self, currency: str) -> bool:
        """Whether this rail can pay in ``currency``."""

    def submit(self, instructions: Sequence[PayoutInstruction]) -> Sequence[RailAnswer]:
        """Hand payments to the rail, one answer per instruction in the same order.
        Must be idempotent on ``idempotency_key``."""

    def status(self, instruction: PayoutInstruction) -> RailAnswer:
        """Ask the rail what became of one payment (after ``UNKNOWN`` or a timeout)."""
