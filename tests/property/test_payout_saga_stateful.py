"""The payout saga against a rail injecting every fault (5xx, lost replies, unknown
results, async answers delayed, duplicated and lost, refusals, failing status queries),
with time moving and runs built as payables arrive.

Always: nobody is paid twice (per payable, at most one payment the bank made), the
ledger nets to zero per currency, no reservation is live past its timeout, every
confirmed payout was paid by the bank and every failed one was not, and each payable
is paid, in flight (reserved) or carried forward. Once the rail heals, every payout
ends confirmed or failed and the figures add up to the minor unit.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tally.payouts.model import PayoutPolicy, PayoutRefused, PayoutState, RunScope
from tests.support.payouts import Faults, FaultyRail, World, payable

POLICY = PayoutPolicy(
    minimum_minor={"EUR": 500, "GBP": 500},
    approval_above_default_minor=10**12,
    reservation_timeout_s=600,
    answer_wait_s=120,
    status_retry_s=30,
    expired_check_s=300,
)
PARTIES = ("provider:evo", "provider:pra", "partner:a1", "partner:a2")


class PayoutSaga(RuleBasedStateMachine):
    @initialize(
        seed=st.integers(0, 2**32 - 1),
        faults=st.builds(
            Faults,
            down=st.integers(0, 300),
            lost_reply=st.integers(0, 300),
            unknown=st.integers(0, 300),
            asynchronous=st.integers(0, 700),
            reject=st.integers(0, 300),
            status_unknown=st.integers(0, 500),
            webhook_lost=st.integers(0, 500),
            webhook_duplicate=st.integers(0, 500),
        ),
    )
    def start(self, seed: int, faults: Faults) -> None:
        self.world = World(policy=POLICY, rail=FaultyRail(seed=seed, faults=faults))
        for cp in PARTIES:
            self.world.register(cp)
        self.count = 0
        # payable id -> payout ids that ever claimed it
        self.claims: dict[str, set[str]] = {}

    @rule(
        party=st.sampled_from(PARTIES),
        currency=st.sampled_from(["EUR", "GBP"]),
        amount=st.integers(-2_000, 20_000).filter(lambda a: a != 0),
    )
    def a_period_closes(self, party: str, currency: str, amount: int) -> None:
        self.count += 1
        p = payable(f"p{self.count}", party, currency, amount)
        self.world.source.items.append(p)
        self.world._fund([p])

    @rule(scope=st.sampled_from(["all", "provider:evo", "partner:a1", "EUR"]))
    def finance_builds_a_run(self, scope: str) -> None:
        if scope == "all":
            s = RunScope("all")
        elif scope == "EUR":
            s = RunScope("all", currency="EUR")
        else:
            kind, party = scope.split(":")
            s = RunScope(kind, party)
        try:
            run = self.world.service.build_run(s, self.world.maker)
        except PayoutRefused:
            return
        assert run.id
        # What each payout claims, as the (memory) store holds it.
        for payable_id, payout_id in self.world.store._claims.items():
            self.claims.setdefault(payable_id, set()).add(payout_id)

    @rule()
    def the_worker_steps(self) -> None:
        self.world.worker.step()

    @rule(count=st.integers(1, 5))
    def webhooks_arrive(self, count: int) -> None:
        answers = self.world.rail.deliver(count)
        if answers:
            self.world.service.absorb("psp", answers)

    @rule(seconds=st.sampled_from([10, 30, 120, 300, 700]))
    def time_passes(self, seconds: int) -> None:
        self.world.advance(seconds)
        self.world.worker.drain()

    @precondition(lambda self: hasattr(self, "world"))
    @invariant()
    def nobody_is_paid_twice(self) -> None:
        bank = self.world.rail.bank
        assert all(n == 1 for n in bank.payments.values())
        for payable_id, payouts in self.claims.items():
            paid = [p for p in payouts if bank.paid(p)]
            assert len(paid) <= 1, (payable_id, paid)

    @precondition(lambda self: hasattr(self, "world"))
    @invariant()
    def the_ledger_nets_to_zero(self) -> None:
        for cur, b in self.world.ledger.totals_by_currency().items():
            assert b.debits_posted == b.credits_posted, cur
            assert b.debits_pending == b.credits_pending, cur

    @precondition(lambda self: hasattr(self, "world"))
    @invariant()
    def no_reservation_is_live_past_its_timeout(self) -> None:
        now = self.world.clock.now()
        for p in self.world.all_payouts():
            if p.state in (PayoutState.RESERVED, PayoutState.SUBMITTED):
                assert p.reserved_until is not None and p.reserved_until > now, p

    @precondition(lambda self: hasattr(self, "world"))
    @invariant()
    def tally_agrees_with_the_bank(self) -> None:
        bank = self.world.rail.bank
        for p in self.world.all_payouts():
            if p.state is PayoutState.CONFIRMED:
                assert bank.paid(p.id), p
            if p.state is PayoutState.FAILED:
                assert not bank.paid(p.id), p

    @precondition(lambda self: hasattr(self, "world"))
    @invariant()
    def every_payable_is_paid_in_flight_or_carried(self) -> None:
        for pos in self.world.service.positions():
            assert pos.owed == pos.paid + pos.in_flight + pos.carried_forward, pos

    def teardown(self) -> None:
        if not hasattr(self, "world"):
            return
        w = self.world
        # The rail heals: every answer is definite and delivered; time runs out every check.
        w.rail.faults = Faults()
        for _ in range(6):
            answers = w.rail.deliver()
            if answers:
                w.service.absorb("psp", answers)
            w.advance(POLICY.expired_check_s + POLICY.reservation_timeout_s)
            w.worker.drain()
        payouts = w.all_payouts()
        assert all(p.state in (PayoutState.CONFIRMED, PayoutState.FAILED) for p in payouts), [
            (p.id, p.state) for p in payouts if not p.state.final
        ]
        paid_by_bank = sum(i.amount_minor for i, ok in w.rail.bank.taken.values() if ok)
        confirmed = sum(p.amount for p in payouts if p.state is PayoutState.CONFIRMED)
        assert paid_by_bank == confirmed
        cleared = sum(w.net(f"platform:payouts:clearing:{c}") for c in ("EUR", "GBP"))
        assert cleared == confirmed
        self.nobody_is_paid_twice()
        self.the_ledger_nets_to_zero()
        self.every_payable_is_paid_in_flight_or_carried()


PayoutSaga.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestPayoutSaga = PayoutSaga.TestCase
