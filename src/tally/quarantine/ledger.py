"""The ledger's quarantine: refused transfer requests, fixed and re-driven by a person.

A re-drive resubmits the kept request under its original id (the idempotency key),
optionally with corrected account ids or code. Amounts and currencies are not
fixable here: changing money is a manual adjustment, not a fix. A request that was
part of a linked chain is not re-driven alone. Every re-drive is audited with the
request before and after the fix and the ledger's answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tally.audit.chain import AuditEntry
from tally.audit.ports import AuditStore
from tally.kernel.clock import Clock
from tally.ledger.codec import request_to_dict
from tally.ledger.model import Rejection, TransferRequest, TransferResult
from tally.ledger.service import LedgerService

# Rejections scanned (newest last) to find the one a re-drive names.
REDRIVE_SCAN_MAX = 100_000
SCAN_PAGE = 1_000


class QuarantineError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Fix:
    debit_account_id: str | None = None
    credit_account_id: str | None = None
    code: str | None = None


class LedgerQuarantine:
    def __init__(self, ledger: LedgerService, audit: AuditStore, clock: Clock) -> None:
        self.ledger = ledger
        self.audit = audit
        self.clock = clock

    def resolved(self, rejection: Rejection) -> bool:
        """The refused transfer has since been committed (re-driven or retried)."""
        return self.ledger.get_transfer(rejection.transfer_id) is not None

    def find(self, transfer_id: str) -> Rejection | None:
        """The latest rejection of ``transfer_id``."""
        found: Rejection | None = None
        cursor: str | None = None
        scanned = 0
        while scanned < REDRIVE_SCAN_MAX:
            page = self.ledger.rejections(cursor=cursor, limit=SCAN_PAGE)
            for r in page.items:
                if r.transfer_id == transfer_id:
                    found = r
            scanned += len(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return found

    def redrive(
        self, transfer_id: str, fix: Fix, *, actor: str, source: str = ""
    ) -> TransferResult:
        rejection = self.find(transfer_id)
        if rejection is None:
            raise QuarantineError("rejection_not_found", f"no refused transfer {transfer_id!r}")
        if rejection.request.linked:
            raise QuarantineError(
                "linked_chain", "this request was part of a linked chain; re-drive the chain"
            )
        if self.resolved(rejection):
            raise QuarantineError("already_resolved", "the transfer has been committed since")
        request: TransferRequest = rejection.request
        fixed = replace(
            request,
            debit_account_id=fix.debit_account_id or request.debit_account_id,
            credit_account_id=fix.credit_account_id or request.credit_account_id,
            code=fix.code or request.code,
        )
        [result] = self.ledger.transfer([fixed])
        self.audit.append(
            AuditEntry(
                actor=actor,
                action="quarantine.redriven",
                target=f"transfer:{transfer_id}",
                at=self.clock.now(),
                source=source,
                before=request_to_dict(request),
                after=request_to_dict(fixed),
                detail={"result": result.code.slug, "rejected_for": rejection.code.slug},
            )
        )
        return result
