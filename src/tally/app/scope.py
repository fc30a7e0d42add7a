"""Partner visibility backed by the settlement partner trees.

A partner scoped to an agent sees that agent and every agent beneath it (as the tree
stands now); one scoped to an operator sees the operator and all of its agents. A tree
that cannot be read (a cycle, an unknown agent) never widens what anyone sees: the
scope falls back to the owners named on the principal.
"""

from __future__ import annotations

from tally.auth.model import OwnerRef, Principal
from tally.kernel.clock import Clock
from tally.ledger.model import OwnerKind
from tally.settlement.config import SettlementConfig
from tally.settlement.partners import TreeError


class PartnerTreeScope:
    def __init__(self, config: SettlementConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock

    def visible_owners(self, principal: Principal) -> frozenset[OwnerRef] | None:
        if principal.unscoped:
            return None
        visible: set[OwnerRef] = set(principal.scope)
        now = self.clock.now()
        agents = self.config.snapshot().agents
        for ref in principal.scope:
            if ref.kind is OwnerKind.OPERATOR:
                visible |= {
                    OwnerRef(OwnerKind.PARTNER, a.id) for a in agents if a.operator == ref.id
                }
            elif ref.kind is OwnerKind.PARTNER:
                for operator in {a.operator for a in agents if a.id == ref.id}:
                    try:
                        below = self.config.partner_tree(operator).subtree(ref.id, now)
                    except TreeError:
                        continue
                    visible |= {OwnerRef(OwnerKind.PARTNER, a) for a in below}
        return frozenset(visible)
