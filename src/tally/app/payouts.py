"""Payouts' ports over the other contexts, for bootstrap to wire: the payables closed
periods left (settlement's statements and commission figures), the checker's TOTP code
(auth), and an alert sink that logs until the risk context's sink is wired."""

from __future__ import annotations

import json

import structlog

from tally.auth.service import AuthService
from tally.kernel.clock import Clock
from tally.kernel.money import parse_amount
from tally.payouts.model import Payable
from tally.settlement.config import SettlementConfig
from tally.settlement.engine import commission_accounts, fee_accounts
from tally.settlement.partners import TreeError
from tally.settlement.ports import SettlementStore

log = structlog.get_logger("tally.alerts")


class SettlementPayables:
    """Fees of closed statements (owed to the provider) and commissions of agents for
    the operator's closed periods (owed to the agent, or by it when negative)."""

    def __init__(self, store: SettlementStore, config: SettlementConfig, clock: Clock) -> None:
        self.store = store
        self.config = config
        self.clock = clock

    def payables(self) -> list[Payable]:
        out: list[Payable] = []
        closed: set[tuple[str, str]] = set()
        for s in self.store.statements():
            doc = json.loads(s.document)
            provider = doc["contract"]["provider"]
            currency = doc["currency"]
            fee = parse_amount(doc["totals"]["fee"], currency, allow_negative=True)
            closed.add((s.operator, s.period))
            if fee:
                _, payable = fee_accounts(provider, s.operator, currency)
                out.append(
                    Payable(
                        f"fee:{s.contract_id}:{s.operator}:{s.period}",
                        f"provider:{provider}",
                        currency,
                        fee,
                        payable.id,
                        s.period,
                        s.operator,
                    )
                )
        figures = self.store.load_figures()
        for (operator, agent, period, currency), accrued in sorted(
            figures.commission_accrued.items()
        ):
            if accrued and (operator, period) in closed:
                _, payable = commission_accounts(operator, agent, currency)
                out.append(
                    Payable(
                        f"commission:{operator}:{agent}:{period}:{currency}",
                        f"partner:{agent}",
                        currency,
                        accrued,
                        payable.id,
                        period,
                        operator,
                    )
                )
        return out

    def subtree(self, agent: str) -> frozenset[str]:
        now = self.clock.now()
        below: set[str] = {agent}
        for operator in {a.operator for a in self.config.snapshot().agents if a.id == agent}:
            try:
                below |= self.config.partner_tree(operator).subtree(agent, now)
            except TreeError:
                continue
        return frozenset(below)


class TotpSecondFactor:
    def __init__(self, auth: AuthService) -> None:
        self.auth = auth

    def verify(self, actor: str, code: str) -> bool:
        if not actor.startswith("user:"):
            return False  # an API key has no second factor: it cannot approve
        return self.auth.verify_second_factor(actor.removeprefix("user:"), code)
