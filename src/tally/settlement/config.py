"""Settlement configuration: contracts, partner trees and FX rates, versioned and cached.

Edits are appended as new versions (never changed in place); an identical re-submission
is accepted as a no-op and a different document under an existing version key is a
conflict. Each edit that adds something is written in one transaction with its audit
record (who, from where, what). Readers get cached, immutable views that are rebuilt
when the store's revision moves, so a change applies from its effective instant without
a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from tally.audit.ports import Transaction
from tally.audit.service import Auditing
from tally.settlement import codec
from tally.settlement.contracts import ContractError, ContractTerms, validate_terms
from tally.settlement.fx import FxRate, FxTable
from tally.settlement.partners import Agent, PartnerTree, Placement
from tally.settlement.ports import ConfigDocuments

T = TypeVar("T")


class PutOutcome(StrEnum):
    CREATED = "created"
    EXISTS = "exists"


class ConfigConflict(ContractError):
    """The version key exists with different content; versions are immutable."""


@dataclass(frozen=True, slots=True)
class FxImport:
    created: int
    existing: int
    conflicts: list[FxRate]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    revision: int
    contracts: tuple[ContractTerms, ...]
    agents: tuple[Agent, ...]
    placements: tuple[Placement, ...]
    fx: FxTable


class SettlementConfig:
    def __init__(self, documents: ConfigDocuments) -> None:
        self._docs = documents
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    # -- edits --------------------------------------------------------------------------
    def _put_in(
        self, tx: Transaction, kind: str, key: str, document: Mapping[str, Any], now: datetime
    ) -> PutOutcome:
        existing = self._docs.get_in(tx, kind, key)
        if existing is not None:
            if dict(existing) != dict(document):
                raise ConfigConflict(f"{kind} {key} exists with different content")
            return PutOutcome.EXISTS
        self._docs.insert_in(tx, kind, key, document, now)
        return PutOutcome.CREATED

    def _put_audited(
        self,
        kind: str,
        key: str,
        document: Mapping[str, Any],
        now: datetime,
        by: Auditing,
        action: str,
        target: str,
    ) -> PutOutcome:
        with self._docs.unit_of_work() as tx:
            outcome = self._put_in(tx, kind, key, document, now)
            if outcome is PutOutcome.CREATED:
                by.record_in(tx, action, target, now, after=document)
        return outcome

    def put_contract(self, terms: ContractTerms, now: datetime, *, by: Auditing) -> PutOutcome:
        problems = validate_terms(terms)
        if problems:
            raise ContractError("; ".join(problems))
        key = f"{terms.contract_id}:{terms.version}"
        target = f"contract:{terms.contract_id}:v{terms.version}"
        document = codec.terms_to_dict(terms)
        return self._put_audited(
            "contract", key, document, now, by, "contract.version_added", target
        )

    def put_agent(self, agent: Agent, now: datetime, *, by: Auditing) -> PutOutcome:
        key = f"{agent.id}@{agent.effective_from.isoformat()}"
        document = codec.agent_to_dict(agent)
        return self._put_audited(
            "agent", key, document, now, by, "partner.agent_added", f"agent:{agent.id}"
        )

    def put_placement(self, placement: Placement, now: datetime, *, by: Auditing) -> PutOutcome:
        tree = self.snapshot()
        known = {a.id for a in tree.agents}
        for name in (placement.agent, placement.parent):
            if name is not None and name not in known:
                raise ContractError(f"agent {name} is not known; add it before placing it")
        key = f"{placement.agent}@{placement.effective_from.isoformat()}"
        document = codec.placement_to_dict(placement)
        target = f"agent:{placement.agent}"
        return self._put_audited(
            "placement", key, document, now, by, "partner.agent_placed", target
        )

    def put_fx_rates(
        self, rates: Sequence[FxRate], now: datetime, *, by: Auditing, origin: str = ""
    ) -> FxImport:
        """Import ``rates`` in one transaction; one audit record if any rate is new
        (``origin``: where they come from, e.g. a file's name, for the record)."""
        created = existing = 0
        conflicts: list[FxRate] = []
        with self._docs.unit_of_work() as tx:
            for rate in rates:
                key = f"{rate.base}/{rate.quote}@{rate.effective_at.isoformat()}"
                try:
                    outcome = self._put_in(tx, "fx_rate", key, codec.rate_to_dict(rate), now)
                except ConfigConflict:
                    conflicts.append(rate)
                    continue
                if outcome is PutOutcome.CREATED:
                    created += 1
                else:
                    existing += 1
            if created:
                after = {
                    "created": created,
                    "existing": existing,
                    "conflicts": len(conflicts),
                    "origin": origin,
                }
                by.record_in(tx, "fx.rates_imported", "fx_rates", now, after=after)
        return FxImport(created, existing, conflicts)

    # -- cached reads -------------------------------------------------------------------
    def snapshot(self) -> _Snapshot:
        revision = self._docs.revision()
        with self._lock:
            current = self._snapshot
            if current is not None and current.revision == revision:
                return current
            docs = self._docs
            current = _Snapshot(
                revision=revision,
                contracts=_load(docs, "contract", codec.terms_from_dict),
                agents=_load(docs, "agent", codec.agent_from_dict),
                placements=_load(docs, "placement", codec.placement_from_dict),
                fx=FxTable(_load(docs, "fx_rate", codec.rate_from_dict)),
            )
            self._snapshot = current
            return current

    def contracts(self, provider: str | None = None) -> list[ContractTerms]:
        found = self.snapshot().contracts
        return [c for c in found if provider is None or c.provider == provider]

    def partner_tree(self, operator: str) -> PartnerTree:
        snap = self.snapshot()
        agents = [a for a in snap.agents if a.operator == operator]
        ids = {a.id for a in agents}
        return PartnerTree(agents, [p for p in snap.placements if p.agent in ids])

    def fx(self) -> FxTable:
        return self.snapshot().fx


def _load(
    docs: ConfigDocuments, kind: str, parse: Callable[[Mapping[str, Any]], T]
) -> tuple[T, ...]:
    return tuple(parse(d) for d in docs.all(kind))
