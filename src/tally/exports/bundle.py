"""Export bundles: CSV and JSON files, a manifest of SHA-256 digests, an Ed25519 signature.

Pure: builds and checks bundles as ``{file name: bytes}``; reading and writing
directories is the caller's business.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tally.audit.chain import Anchor, AuditHead, AuditRecord, entry_to_dict
from tally.kernel.money import format_amount
from tally.ledger.model import Account, OwnerKind, Transfer

FORMAT = "tally-export/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "signing_key.pub.pem"
# Files that describe the bundle rather than being listed in the manifest.
ENVELOPE = frozenset({MANIFEST, SIGNATURE, PUBLIC_KEY})

TRANSFER_FIELDS = (
    "id",
    "kind",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "currency",
    "code",
    "pending_id",
    "status",
    "occurred_at",
    "recorded_at",
    "event_ref",
)
ACCOUNT_FIELDS = ("id", "owner_kind", "owner_id", "currency", "purpose")
AUDIT_FIELDS = (
    "seq",
    "actor",
    "action",
    "target",
    "at",
    "source",
    "before",
    "after",
    "detail",
    "prev_hash",
    "hash",
)


def _utc(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class Pseudonyms:
    """Replaces player identifiers with pseudonyms in every field an export writes.

    A player id reaches an export not only as an account's owner: inside account ids
    ("player:alice-42:EUR"), transfer ids ("deposit:alice-42-EUR-initial"), event
    references, audit targets and the before/after/detail of audit records. So every
    text field goes through :meth:`text`, which replaces each player id and player account
    id (all of them, from the ledger: an audit record can name a player whose account
    moved no money in the period) where it stands as a whole token, not inside a longer
    name ("p1" in "op1" is left alone). A player account id becomes
    ``player-account:<pseudonym>`` and a player id its pseudonym, the same in every file,
    so records still join up.
    """

    def __init__(
        self,
        accounts: Iterable[Account],
        pseudonymise: Callable[[str], str],
        players: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._pseudonymise = pseudonymise
        self._account_ids: dict[str, str] = {}
        owners: set[str] = set()
        pairs = [(a.id, a.owner_id) for a in accounts if a.owner_kind is OwnerKind.PLAYER]
        for account_id, owner in [*pairs, *players]:
            self._account_ids[account_id] = "player-account:" + pseudonymise(account_id)
            owners.add(owner)
        self._names = {o: pseudonymise(o) for o in owners if o} | self._account_ids
        # Longest first, so an account id wins over the player id inside it.
        alternatives = "|".join(re.escape(n) for n in sorted(self._names, key=len, reverse=True))
        self._pattern = (
            re.compile(rf"(?<![A-Za-z0-9_])(?:{alternatives})(?![A-Za-z0-9_])")
            if alternatives
            else None
        )

    def text(self, value: str) -> str:
        """``value`` with every player id and player account id in it pseudonymised."""
        if self._pattern is None or not value:
            return value
        return self._pattern.sub(lambda m: self._names[m.group(0)], value)

    def value(self, value: Any) -> Any:
        """A JSON-like value with :meth:`text` applied to every string in it (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def account_id(self, account_id: str) -> str:
        return self._account_ids.get(account_id) or self.text(account_id)

    def account(self, a: Account) -> dict[str, str]:
        player = a.owner_kind is OwnerKind.PLAYER
        return {
            "id": self.account_id(a.id),
            "owner_kind": a.owner_kind.value,
            "owner_id": self._pseudonymise(a.owner_id) if player else self.text(a.owner_id),
            "currency": a.currency,
            "purpose": self.text(a.purpose),
        }

    def transfer(self, t: Transfer) -> dict[str, str]:
        return {
            "id": self.text(t.id),
            "kind": t.kind.value,
            "debit_account_id": self.account_id(t.debit_account_id),
            "credit_account_id": self.account_id(t.credit_account_id),
            "amount": format_amount(t.amount, t.currency),
            "currency": t.currency,
            "code": self.text(t.code),
            "pending_id": self.text(t.pending_id),
            "status": t.status.value if t.status else "",
            "occurred_at": _utc(t.occurred_at),
            "recorded_at": _utc(t.recorded_at),
            "event_ref": self.text(t.event_ref),
        }

    def audit(self, r: AuditRecord) -> dict[str, Any]:
        """An audit record's row; its hashes are over the original (see the manifest)."""
        row = audit_row(r)
        for name in ("actor", "target", "source", "before", "after", "detail"):
            row[name] = self.value(row[name])
        return row


def audit_row(r: AuditRecord) -> dict[str, Any]:
    body = entry_to_dict(r.entry)
    body["at"] = _utc(r.entry.at)
    return {"seq": r.seq, **body, "prev_hash": r.prev_hash, "hash": r.hash}


def _csv(fields: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v
                for k, v in row.items()
            }
        )
    return out.getvalue().encode()


def _json(rows: Sequence[Mapping[str, Any]]) -> bytes:
    return (json.dumps(list(rows), indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class ExportRequest:
    start: datetime
    end: datetime
    owner: str | None  # "<kind>:<id>" when only one owner's transfers are wanted
    created_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class StatementFile:
    contract_id: str
    operator: str
    period: str
    sha256: str
    closed_at: datetime
    document: bytes
    csv: bytes


STATEMENT_FIELDS = ("contract_id", "operator", "period", "sha256", "closed_at", "json", "csv")


def build_files(
    request: ExportRequest,
    transfers: Sequence[Transfer],
    accounts: Sequence[Account],
    audit: Sequence[AuditRecord],
    pseudonymise: Callable[[str], str],
    statements: Sequence[StatementFile] = (),
    players: Iterable[tuple[str, str]] = (),
) -> dict[str, bytes]:
    """``players``: every player account as (account id, player id), to pseudonymise."""
    names = Pseudonyms(accounts, pseudonymise, players)
    t_rows = [names.transfer(t) for t in transfers]
    a_rows = [names.account(a) for a in sorted(accounts, key=lambda a: a.id)]
    au_rows = [names.audit(r) for r in audit]
    files: dict[str, bytes] = {}
    index: list[dict[str, str]] = []
    for i, st in enumerate(statements, start=1):
        name = f"statement-{i:04d}"
        files[f"{name}.json"] = st.document
        files[f"{name}.csv"] = st.csv
        index.append(
            {
                "contract_id": st.contract_id,
                "operator": st.operator,
                "period": st.period,
                "sha256": st.sha256,
                "closed_at": _utc(st.closed_at),
                "json": f"{name}.json",
                "csv": f"{name}.csv",
            }
        )
    return {
        **files,
        "statements.csv": _csv(STATEMENT_FIELDS, index),
        "statements.json": _json(index),
        "transfers.csv": _csv(TRANSFER_FIELDS, t_rows),
        "transfers.json": _json(t_rows),
        "accounts.csv": _csv(ACCOUNT_FIELDS, a_rows),
        "accounts.json": _json(a_rows),
        "audit.csv": _csv(AUDIT_FIELDS, au_rows),
        "audit.json": _json(au_rows),
    }


def manifest_bytes(
    request: ExportRequest,
    files: Mapping[str, bytes],
    counts: Mapping[str, int],
    audit_head: AuditHead | None = None,
) -> bytes:
    manifest = {
        "format": FORMAT,
        "period": {"start": _utc(request.start), "end": _utc(request.end)},
        "owner": request.owner,
        "created_at": _utc(request.created_at),
        "created_by": request.created_by,
        "counts": dict(counts),
        "statements": "provider fee statements closed in the period, as frozen at close",
        "pseudonymised": "player identifiers, with a keyed hash (HMAC-SHA256), in every field; "
        "audit records' hashes are over the original records",
        # The audit chain's head when the bundle was made, signed with it and out of the
        # database's reach: `tally audit verify --anchor-bundle` checks the trail against it.
        "audit_head": None
        if audit_head is None
        else {"seq": audit_head.seq, "hash": audit_head.hash},
        "files": {
            name: {"sha256": sha256(data), "bytes": len(data)} for name, data in files.items()
        },
    }
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()


def sign_bundle(
    files: Mapping[str, bytes], manifest: bytes, sign: Callable[[bytes], bytes], public_pem: bytes
) -> dict[str, bytes]:
    return {
        **files,
        MANIFEST: manifest,
        SIGNATURE: base64.b64encode(sign(manifest)) + b"\n",
        PUBLIC_KEY: public_pem,
    }


def to_zip(bundle: Mapping[str, bytes]) -> bytes:
    """The bundle as one zip archive (in memory), as the API hands it out."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(bundle.items()):
            archive.writestr(name, data)
    return out.getvalue()


def check_bundle(
    bundle: Mapping[str, bytes], public_pem: bytes, verify: Callable[[bytes, bytes, bytes], bool]
) -> list[str]:
    """Every problem with a bundle; empty means the signature and all digests hold."""
    manifest = bundle.get(MANIFEST)
    signature = bundle.get(SIGNATURE)
    if manifest is None or signature is None:
        return ["manifest.json or manifest.sig is missing"]
    try:
        raw_signature = base64.b64decode(signature.strip(), validate=True)
    except ValueError:
        return ["manifest.sig is not base64"]
    if not verify(public_pem, manifest, raw_signature):
        return ["the manifest's signature does not verify with the given public key"]
    problems: list[str] = []
    listed = json.loads(manifest)["files"]
    for name, meta in sorted(listed.items()):
        data = bundle.get(name)
        if data is None:
            problems.append(f"{name}: listed in the manifest but missing")
        elif sha256(data) != meta["sha256"]:
            problems.append(f"{name}: SHA-256 differs from the manifest (the file was changed)")
    for name in sorted(set(bundle) - set(listed) - ENVELOPE):
        problems.append(f"{name}: not listed in the manifest (the file was added)")
    return problems


def audit_anchor(manifest: bytes) -> Anchor | None:
    """The audit head a bundle's manifest publishes, if it has one."""
    head = json.loads(manifest).get("audit_head")
    if not isinstance(head, dict):
        return None
    return Anchor.parse(f"{head.get('seq')}:{head.get('hash')}")
