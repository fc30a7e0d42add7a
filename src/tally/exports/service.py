"""Builds a signed regulator export for a period, and records it in the audit trail."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from tally.audit.chain import AuditEntry, AuditRecord
from tally.audit.ports import AuditStore
from tally.auth.model import OwnerRef
from tally.exports.bundle import (
    ExportRequest,
    StatementFile,
    build_files,
    manifest_bytes,
    sha256,
    sign_bundle,
)
from tally.exports.ports import TransferSource
from tally.kernel.clock import Clock
from tally.ledger.model import Account, OwnerKind, Transfer
from tally.security.signing import Signer

# Transfers read per round trip while exporting.
EXPORT_READ_BATCH = 5_000
# Longest period one export may cover (a regulator's year, with a leap day).
EXPORT_MAX_PERIOD = timedelta(days=366)


class ExportService:
    def __init__(
        self,
        source: TransferSource,
        audit: AuditStore,
        pseudonymise: Callable[[str], str],
        signer: Signer,
        clock: Clock,
        statements: Callable[[], Sequence[StatementFile]] | None = None,
    ) -> None:
        self.source = source
        self.audit = audit
        self.pseudonymise = pseudonymise
        self.signer = signer
        self.clock = clock
        self.statements = statements or (lambda: [])

    def export(
        self,
        start: datetime,
        end: datetime,
        *,
        owner: OwnerRef | None = None,
        actor: str = "system",
        source: str = "",
    ) -> dict[str, bytes]:
        if end <= start:
            raise ValueError("the period's end must be after its start")
        if end - start > EXPORT_MAX_PERIOD:
            raise ValueError("an export covers at most 366 days")
        transfers: list[Transfer] = []
        after = 0
        while True:
            batch = self.source.transfers_recorded_between(
                start, end, after=after, limit=EXPORT_READ_BATCH
            )
            transfers.extend(t for _, t in batch)
            if len(batch) < EXPORT_READ_BATCH:
                break
            after = batch[-1][0]
        ids = sorted(
            {t.debit_account_id for t in transfers} | {t.credit_account_id for t in transfers}
        )
        accounts = {a.id: a for a in self.source.accounts(ids)}
        if owner is not None:
            transfers = [t for t in transfers if _touches(owner, t, accounts)]
            keep = {t.debit_account_id for t in transfers} | {
                t.credit_account_id for t in transfers
            }
            accounts = {i: a for i, a in accounts.items() if i in keep}
        audit: list[AuditRecord] = [r for r in self.audit.iter_audit() if start <= r.entry.at < end]
        head = self.audit.audit_head()
        statements = [
            st
            for st in self.statements()
            if start <= st.closed_at < end
            and (owner is None or (owner.kind is OwnerKind.OPERATOR and owner.id == st.operator))
        ]
        request = ExportRequest(start, end, str(owner) if owner else None, self.clock.now(), actor)
        files = build_files(
            request,
            transfers,
            list(accounts.values()),
            audit,
            self.pseudonymise,
            statements,
            players=self.source.player_accounts(),
        )
        counts = {
            "transfers": len(transfers),
            "accounts": len(accounts),
            "audit_records": len(audit),
            "statements": len(statements),
        }
        manifest = manifest_bytes(request, files, counts, head)
        self.audit.append(
            AuditEntry(
                actor=actor,
                action="export.created",
                target=f"export:{start.isoformat()}/{end.isoformat()}",
                at=request.created_at,
                source=source,
                after={"manifest_sha256": sha256(manifest), **counts},
                detail={"owner": request.owner},
            )
        )
        return sign_bundle(files, manifest, self.signer.sign, self.signer.public_pem())


def _touches(owner: OwnerRef, t: Transfer, accounts: dict[str, Account]) -> bool:
    for account_id in (t.debit_account_id, t.credit_account_id):
        a = accounts.get(account_id)
        if a is not None and a.owner_kind is owner.kind and a.owner_id == owner.id:
            return True
    return False
