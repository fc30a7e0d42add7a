"""Payouts read what settlement's closed periods left owed (fees to providers, commissions
to agents) and pay exactly those: the payable accounts come back to zero."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tally.adapters.memory.backoffice import MemoryBackofficeStore
from tally.adapters.memory.payouts import MemoryPayoutStore
from tally.app.payouts import SettlementPayables
from tally.audit.chain import Sealer
from tally.audit.service import Auditing
from tally.events.model import EventKind
from tally.payouts.model import Counterparty, CounterpartyKind, PayoutState, RunScope
from tally.payouts.service import PayoutService, PayoutWorker
from tally.settlement.contracts import ContractTerms, flat
from tally.settlement.engine import SettlementEvent
from tally.settlement.partners import Agent, Placement
from tests.support.payouts import Codes, FaultyRail, RecordingAlerts
from tests.support.settlement import TestWorker

T = datetime(2026, 3, 2, tzinfo=UTC)
EUR = ContractTerms(
    "acme-eu", 1, "acme", datetime(2026, 1, 1, tzinfo=UTC), "EUR", {"*": flat("0.10")}
)
FEE = "provider:acme:fee_payable:op1:EUR"
COMMISSION = "partner:store1:commission_payable:EUR"


def ev(key: str, kind: EventKind, amount: int) -> SettlementEvent:
    return SettlementEvent(
        key, kind, "acme", amount=amount, occurred_at=T, operator="op1", player="p",
        game_type="slots", region="eu", currency="EUR", agent="store1",
    )  # type: ignore[arg-type]  # fmt: skip


def test_a_closed_period_s_fee_and_commission_are_paid_and_their_accounts_cleared() -> None:
    w = TestWorker(
        [EUR],
        agents=[Agent("store1", "op1", Decimal("0.05"), Decimal("0"), T.replace(day=1))],
        placements=[Placement("store1", None, T.replace(day=1))],
    )
    w.feed([ev("a", EventKind.BET, 10_000), ev("b", EventKind.WIN, 4_000)], T)
    open_payables = SettlementPayables(w.store, w.config, w.clock)
    assert open_payables.payables() == []  # nothing is owed before the period closes
    statement = w.close("acme-eu", "op1", "2026-03", datetime(2026, 4, 2, tzinfo=UTC))
    found = {p.counterparty: p for p in open_payables.payables()}
    # GGR 10,000 - 4,000 = 6,000: a 10% fee of 600 to acme.
    assert (found["provider:acme"].amount, found["provider:acme"].account_id) == (600, FEE)
    assert statement.fee.fee == 600 == w.net(FEE)
    commission = found["partner:store1"]
    assert commission.account_id == COMMISSION and commission.amount == w.net(COMMISSION) > 0
    audit = MemoryBackofficeStore(Sealer(bytes(32)))
    maker = Auditing(audit, "user:maker")
    rail = FaultyRail()
    service = PayoutService(
        MemoryPayoutStore(w.ledger),  # type: ignore[arg-type]
        open_payables,
        {"psp": rail},
        w.clock,
        RecordingAlerts(),
        second_factor=Codes(),
        system=Auditing(audit, "system:payouts"),
    )
    for kind, party in ((CounterpartyKind.PROVIDER, "acme"), (CounterpartyKind.PARTNER, "store1")):
        service.register_counterparty(
            Counterparty(Counterparty.key(kind, party), kind, party, party, "psp", "DE00"), maker
        )
    run = service.build_run(RunScope("all"), maker)
    PayoutWorker(service).drain()
    assert {p.state for p in service.payouts_of_run(run.id)} == {PayoutState.CONFIRMED}
    assert w.net(FEE) == 0 and w.net(COMMISSION) == 0
    assert w.net("platform:payouts:clearing:EUR") == 600 + commission.amount
