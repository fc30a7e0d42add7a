"""Payouts as use cases: counterparties, runs (maker-checker), rail answers, and the
process manager that drives each payout's saga.

Every state change is written by :meth:`PayoutStore.commit` (or a unit of work) with its
ledger transfers and its audit record in one transaction, exactly as settlement commits
its figures with its log position (ADR 0004, ADR 0021): a crash at any instant leaves
each payout in the state of its last commit, from which the worker carries on.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog

from tally.audit.ports import Transaction
from tally.audit.service import Auditing
from tally.kernel.alerts import AlertSignal, AlertSink, Severity
from tally.kernel.clock import Clock
from tally.kernel.limits import PayoutLimits
from tally.payouts.model import (
    Counterparty,
    Payable,
    Payout,
    PayoutPolicy,
    PayoutRefused,
    PayoutState,
    Refusal,
    Run,
    RunScope,
    RunStatus,
    Transition,
    contradicts,
    needs_status,
    on_answer,
    plan_run,
    reserve,
)
from tally.payouts.ports import PayablesSource, PayoutStore, SecondFactor
from tally.payouts.rails import Rail, RailAnswer, RailOutcome

log = structlog.get_logger("tally.payouts")

_SEVERITY = {
    "payouts.reservation_expired": Severity.CRITICAL,
    "payouts.confirmed_after_expiry": Severity.WARNING,
    "payouts.reservation_refused": Severity.WARNING,
}
_CAUSE = {
    "payouts.reservation_expired": "the reservation of payout {id} expired with no definite "
    "answer from rail {rail}: find out whether it was paid before paying it again",
    "payouts.confirmed_after_expiry": "rail {rail} confirmed payout {id} after its reservation "
    "expired: it was posted outright; check the counterparty was not paid twice",
    "payouts.reservation_refused": "the ledger refused to reserve payout {id}: its payables "
    "were released for a later run",
}


@dataclass(frozen=True, slots=True)
class Position:
    """One counterparty's standing in one currency: owed by closed periods (net), paid,
    in flight (requested to expired), carried forward (unclaimed, below the minimum or
    not yet in a run)."""

    counterparty: str
    currency: str
    owed: int
    paid: int
    in_flight: int
    carried_forward: int


@dataclass(frozen=True, slots=True)
class Absorbed:
    applied: int
    unchanged: int  # duplicates and answers that change nothing
    contradictions: tuple[str, ...] = field(default_factory=tuple)


def _text(value: str, what: str, limit: int) -> str:
    if len(value) > limit:
        raise PayoutRefused(Refusal.BAD_INPUT, f"{what} is longer than {limit} characters")
    return value


class PayoutService:
    def __init__(
        self,
        store: PayoutStore,
        payables: PayablesSource,
        rails: Mapping[str, Rail],
        clock: Clock,
        alerts: AlertSink,
        *,
        second_factor: SecondFactor,
        policy: PayoutPolicy | None = None,
        limits: PayoutLimits | None = None,
        system: Auditing,
    ) -> None:
        """``system``: on whose trail the saga's own moves (the worker, absorbed rail
        answers) are recorded."""
        self.store = store
        self.payables = payables
        self.rails = dict(rails)
        self.clock = clock
        self.alerts = alerts
        self.second_factor = second_factor
        self.policy = policy or PayoutPolicy()
        self.limits = limits or PayoutLimits()
        self.system = system
        self.lock = threading.Lock()

    # -- refusals ------------------------------------------------------------------------
    def _refuse(self, exc: PayoutRefused, key: str) -> PayoutRefused:
        self.alerts.signal(
            AlertSignal(
                f"payouts.refused.{exc.code.slug}",
                key,
                Severity.WARNING,
                exc.message,
                self.clock.now(),
            )
        )
        log.warning("payouts_request_refused", code=exc.code.slug, key=key, reason=exc.message)
        return exc

    # -- counterparties ------------------------------------------------------------------
    def register_counterparty(self, counterparty: Counterparty, by: Auditing) -> Counterparty:
        n = self.limits.text_max_length
        for value, what in (
            (counterparty.party, "party"),
            (counterparty.name, "name"),
            (counterparty.account, "account"),
            (counterparty.bic, "bic"),
            (counterparty.rail, "rail"),
        ):
            _text(value, what, n)
        if counterparty.id != Counterparty.key(counterparty.kind, counterparty.party):
            raise PayoutRefused(
                Refusal.BAD_INPUT, f"a counterparty's id is <kind>:<party>, not {counterparty.id}"
            )
        if counterparty.rail not in self.rails:
            raise self._refuse(
                PayoutRefused(
                    Refusal.UNKNOWN_RAIL, f"rail {counterparty.rail!r} is not configured"
                ),
                counterparty.id,
            )
        if not counterparty.party or not counterparty.account:
            raise PayoutRefused(Refusal.BAD_INPUT, "a counterparty needs a party and an account")
        now = self.clock.now()
        with self.store.unit_of_work() as tx:
            self.store.put_counterparty_in(tx, counterparty, now)
            by.record_in(
                tx,
                "payouts.counterparty.set",
                f"counterparty:{counterparty.id}",
                now,
                after={
                    "rail": counterparty.rail,
                    "blocked": counterparty.blocked,
                    "name": counterparty.name,
                },
            )
        return counterparty

    def counterparties(self) -> list[Counterparty]:
        return self.store.counterparties()

    # -- runs ----------------------------------------------------------------------------
    def _in_scope(self, scope: RunScope) -> list[Payable]:
        found = self.payables.payables()
        if scope.currency:
            found = [p for p in found if p.currency == scope.currency]
        if scope.kind == "provider":
            found = [p for p in found if p.counterparty == f"provider:{scope.party}"]
        elif scope.kind == "partner":
            agents = {f"partner:{a}" for a in self.payables.subtree(scope.party)}
            found = [p for p in found if p.counterparty in agents]
        taken = self.store.claimed(p.id for p in found)
        return [p for p in found if p.id not in taken]

    def build_run(self, scope: RunScope, by: Auditing) -> Run:
        """Net and plan a run from the scope's unclaimed payables; refused as a whole
        (with an alert) if any counterparty is unknown, blocked or without a rail for
        its currency. Runs over the policy's amount wait for a checker's approval."""
        now = self.clock.now()
        run_id = f"run-{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
        try:
            payables = self._in_scope(scope)
            if len(payables) > self.limits.run_max_payables:
                raise PayoutRefused(
                    Refusal.TOO_MANY,
                    f"the scope holds {len(payables)} payables, more than "
                    f"{self.limits.run_max_payables}: narrow it",
                )
            supports = {name: None for name in self.rails}
            counterparties = {c.id: c for c in self.store.counterparties()}
            plan = plan_run(run_id, payables, counterparties, self.policy, supports, now)
            for payout in plan.payouts:
                if not self.rails[payout.rail].supports(payout.currency):
                    raise PayoutRefused(
                        Refusal.NO_RAIL_FOR_CURRENCY,
                        f"rail {payout.rail} of counterparty {payout.counterparty} "
                        f"cannot pay {payout.currency}",
                    )
        except PayoutRefused as exc:
            raise self._refuse(exc, f"run:{scope.describe()}") from None
        status = (
            RunStatus.AWAITING_APPROVAL
            if self.policy.needs_approval(plan.totals)
            else RunStatus.APPROVED
        )
        run = Run(run_id, scope.describe(), by.actor, now, status, dict(plan.totals), plan.lines)
        with self.store.unit_of_work() as tx:
            self.store.create_run_in(tx, run, plan)
            by.record_in(
                tx,
                "payouts.run.created",
                f"run:{run_id}",
                now,
                after={
                    "scope": run.scope,
                    "status": status.value,
                    "totals": {c: str(v) for c, v in sorted(plan.totals.items())},
                    "payouts": len(plan.payouts),
                    "carried": sum(1 for line in plan.lines if not line.payout_id),
                },
            )
        log.info("payouts_run_created", run=run_id, payouts=len(plan.payouts), status=status.value)
        return run

    def approve(self, run_id: str, totp_code: str, by: Auditing) -> Run:
        """The checker's approval: another user than the maker, with a fresh TOTP code."""
        now = self.clock.now()
        _text(totp_code, "a TOTP code", self.limits.text_max_length)
        run = self.store.run(run_id)
        self._check_approvable(run, run_id, by)
        # The code is checked (and its step consumed, in auth's own store) before the
        # run's transaction opens: on the embedded file that transaction holds the lock.
        if not self.second_factor.verify(by.actor, totp_code):
            raise self._refuse(
                PayoutRefused(
                    Refusal.SECOND_FACTOR_REFUSED, "the TOTP code is wrong or was used already"
                ),
                f"run:{run_id}",
            )
        with self.store.unit_of_work() as tx:
            run = self.store.run_in(tx, run_id)
            self._check_approvable(run, run_id, by)  # another checker may have been first
            assert run is not None
            approved = replace(run, status=RunStatus.APPROVED, approver=by.actor, approved_at=now)
            self.store.approve_in(tx, approved)
            by.record_in(
                tx,
                "payouts.run.approved",
                f"run:{run_id}",
                now,
                before={"status": run.status.value},
                after={"status": approved.status.value, "maker": run.maker},
            )
        return approved

    def _check_approvable(self, run: Run | None, run_id: str, by: Auditing) -> None:
        if run is None:
            raise PayoutRefused(Refusal.RUN_NOT_FOUND, f"run {run_id} does not exist")
        if run.status is not RunStatus.AWAITING_APPROVAL:
            raise PayoutRefused(
                Refusal.RUN_NOT_AWAITING_APPROVAL, f"run {run_id} is {run.status.value}"
            )
        if by.actor == run.maker:
            raise self._refuse(
                PayoutRefused(
                    Refusal.MAKER_CANNOT_APPROVE,
                    f"{by.actor} made run {run_id} and cannot approve it",
                ),
                f"run:{run_id}",
            )

    def run(self, run_id: str) -> Run | None:
        return self.store.run(run_id)

    def runs(self, limit: int = 100) -> list[Run]:
        return self.store.runs(min(limit, self.limits.page_max_runs))

    def payouts_of_run(self, run_id: str) -> list[Payout]:
        return self.store.payouts_of_run(run_id)

    def payout(self, payout_id: str) -> Payout | None:
        return self.store.payouts([payout_id]).get(payout_id)

    def positions(self, counterparties: Sequence[str] | None = None) -> list[Position]:
        """Per counterparty and currency: owed, paid, in flight, carried forward."""
        payables = self.payables.payables()
        if counterparties is not None:
            wanted = set(counterparties)
            payables = [p for p in payables if p.counterparty in wanted]
        names = sorted({p.counterparty for p in payables})
        claimed = self.store.claimed(p.id for p in payables)
        figures: dict[tuple[str, str], list[int]] = {}
        for p in payables:
            row = figures.setdefault((p.counterparty, p.currency), [0, 0, 0, 0])
            row[0] += p.amount
            if p.id not in claimed:
                row[3] += p.amount
        for payout in self.store.payouts_of(names):
            row = figures.setdefault((payout.counterparty, payout.currency), [0, 0, 0, 0])
            if payout.state is PayoutState.CONFIRMED:
                row[1] += payout.amount
            elif payout.state is not PayoutState.FAILED:
                row[2] += payout.amount
        return [Position(c, cur, *figures[(c, cur)]) for c, cur in sorted(figures)]

    # -- the saga's writes ----------------------------------------------------------------
    def commit(
        self, transitions: Sequence[Transition], action: str, now: datetime | None = None
    ) -> list[tuple[Transition, Payout]]:
        """Write transitions with their transfers and one audit record; then signal.
        ``now``: the instant the transitions were decided at, which the ledger also
        writes them at (a reservation's timeout is counted from it on both sides)."""
        if not transitions:
            return []
        now = now or self.clock.now()

        def record(tx: Transaction, payouts: list[Payout]) -> None:
            if not payouts:
                return
            moved: dict[str, list[str]] = {}
            for p in payouts:
                moved.setdefault(p.state.value, []).append(p.id)
            self.system.record_in(tx, action, "payouts", now, after={"moved": moved})

        done = self.store.commit(transitions, now, record)
        for t, payout in done:
            kind = t.alert if payout is t.after else t.fallback_alert
            if kind:
                self._signal(kind, payout, now)
            if t.clear_alert and payout is t.after:
                self.alerts.clear(t.clear_alert, f"payout:{payout.id}", now)
        return done

    def _signal(self, kind: str, payout: Payout, now: datetime) -> None:
        self.alerts.signal(
            AlertSignal(
                kind,
                f"payout:{payout.id}",
                _SEVERITY.get(kind, Severity.WARNING),
                _CAUSE.get(kind, kind).format(id=payout.id, rail=payout.rail),
                now,
                money_at_risk=payout.amount,
                currency=payout.currency,
                evidence={
                    "counterparty": payout.counterparty,
                    "amount": str(payout.amount),
                    "run": payout.run_id,
                },
                refs=(f"payout:{payout.id}",),
            )
        )

    def absorb(
        self, rail_name: str, answers: Sequence[RailAnswer], *, run_id: str | None = None
    ) -> Absorbed:
        """Answers a rail sent by itself (a signed webhook, a ``pain.002``'s lines).

        Refused as a whole, with an alert, if the rail is unknown, an answer names a
        payout that does not exist or that another rail pays: nothing moves. Duplicates
        change nothing; a definite answer against a final state is never acted on but
        signalled (critical). ``run_id``: the run a status report says it answers for (a
        ``pain.002`` names its ``pain.001``): an answer for a payout of another run is
        refused the same way.
        """
        if rail_name not in self.rails:
            raise self._refuse(
                PayoutRefused(Refusal.UNKNOWN_RAIL, f"rail {rail_name!r} is not configured"),
                rail_name,
            )
        if len(answers) > self.limits.absorb_max_answers:
            raise self._refuse(
                PayoutRefused(
                    Refusal.TOO_MANY, f"at most {self.limits.absorb_max_answers} answers at once"
                ),
                rail_name,
            )
        with self.lock:
            now = self.clock.now()
            ids = list(dict.fromkeys(a.payout_id for a in answers))
            known = self.store.payouts(ids)
            missing = [i for i in ids if i not in known]
            if missing:
                raise self._refuse(
                    PayoutRefused(
                        Refusal.UNKNOWN_PAYOUT,
                        f"rail {rail_name} answered for payout {missing[0]}, which does not exist"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                    ),
                    f"{rail_name}:{missing[0]}",
                )
            foreign = [i for i in ids if known[i].rail != rail_name]
            if foreign:
                raise self._refuse(
                    PayoutRefused(
                        Refusal.ANSWER_FROM_ANOTHER_RAIL,
                        f"payout {foreign[0]} is paid by rail "
                        f"{known[foreign[0]].rail}, not {rail_name}",
                    ),
                    f"{rail_name}:{foreign[0]}",
                )
            if run_id is not None:
                stray = [i for i in ids if known[i].run_id != run_id]
                if stray:
                    raise self._refuse(
                        PayoutRefused(
                            Refusal.ANSWER_FOR_ANOTHER_RUN,
                            f"payout {stray[0]} is in run {known[stray[0]].run_id}, "
                            f"not in run {run_id} that the report answers for",
                        ),
                        f"{rail_name}:{run_id}",
                    )
            current = dict(known)
            transitions: dict[str, Transition] = {}
            contradictions: list[str] = []
            unchanged = 0
            for answer in answers:
                payout = (
                    transitions[answer.payout_id].after
                    if answer.payout_id in transitions
                    else current[answer.payout_id]
                )
                if contradicts(payout, answer):
                    contradictions.append(payout.id)
                    self.alerts.signal(
                        AlertSignal(
                            "payouts.contradiction",
                            f"payout:{payout.id}",
                            Severity.CRITICAL,
                            f"rail {rail_name} says payout {payout.id} is {answer.outcome.value}, "
                            f"but it is {payout.state.value} in Tally",
                            now,
                            money_at_risk=payout.amount,
                            currency=payout.currency,
                            refs=(f"payout:{payout.id}",),
                        )
                    )
                    continue
                t = on_answer(payout, answer, self.policy, now)
                if t is None:
                    unchanged += 1
                    continue
                earlier = transitions.get(answer.payout_id)
                # Several answers for one payout in one batch: one move, from the state
                # the store holds to the last (only a final move carries transfers).
                transitions[answer.payout_id] = (
                    t if earlier is None else replace(t, expect=earlier.expect)
                )
            done = self.commit(list(transitions.values()), "payouts.answers.absorbed", now)
        return Absorbed(len(done), unchanged + len(transitions) - len(done), tuple(contradictions))


class PayoutWorker:
    """The process manager: moves each due payout one step of its saga per call."""

    def __init__(self, service: PayoutService) -> None:
        self.service = service
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _ask(self, rail: Rail, payout: Payout) -> RailAnswer:
        try:
            return rail.status(payout.instruction())
        except Exception as exc:  # noqa: BLE001 - a rail that fails answers nothing definite
            log.warning("payouts_status_failed", payout=payout.id, rail=rail.name, error=str(exc))
            return RailAnswer(payout.id, RailOutcome.UNKNOWN, reason=str(exc))

    def _submit(self, rail: Rail, payouts: list[Payout]) -> list[RailAnswer]:
        try:
            answers = list(rail.submit([p.instruction() for p in payouts]))
        except Exception as exc:  # noqa: BLE001 - maybe taken, maybe not: ask later
            log.warning("payouts_submit_failed", rail=rail.name, count=len(payouts), error=str(exc))
            return [RailAnswer(p.id, RailOutcome.UNKNOWN, reason=str(exc)) for p in payouts]
        if len(answers) != len(payouts) or any(
            a.payout_id != p.id for a, p in zip(answers, payouts, strict=False)
        ):
            log.warning("payouts_submit_answers_mismatched", rail=rail.name, count=len(payouts))
            return [
                RailAnswer(p.id, RailOutcome.UNKNOWN, reason="answers did not match")
                for p in payouts
            ]
        return answers

    def step(self) -> int:
        """Move the due payouts one step; returns how many were due (0: nothing to do)."""
        service = self.service
        policy = service.policy
        with service.lock:
            now = service.clock.now()
            due = service.store.due(now, service.limits.step_max_payouts)
            if not due:
                return 0
            first: list[Transition] = []
            # Anything whose fate is open is asked about before anything else is done.
            for payout in due:
                if needs_status(payout, now):
                    t = on_answer(
                        payout, self._ask(service.rails[payout.rail], payout), policy, now
                    )
                    if t is not None:
                        first.append(t)
                elif payout.state is PayoutState.REQUESTED:
                    first.append(reserve(payout, policy, now))
            written = service.commit(first, "payouts.worker.step", now)
            ready = [p for _, p in written if p.state is PayoutState.RESERVED]
            ready += [
                p for p in due if p.state is PayoutState.RESERVED and not needs_status(p, now)
            ]
            # One submit per rail and run: a bank file rail writes one file per call.
            by_rail: dict[tuple[str, str], list[Payout]] = {}
            for payout in ready:
                by_rail.setdefault((payout.rail, payout.run_id), []).append(payout)
            second: list[Transition] = []
            now = service.clock.now()
            for name, run_id in sorted(by_rail):
                batch = by_rail[(name, run_id)]
                for payout, answer in zip(
                    batch, self._submit(service.rails[name], batch), strict=True
                ):
                    t = on_answer(payout, answer, policy, now)
                    if t is not None:
                        second.append(t)
            service.commit(second, "payouts.worker.submitted", now)
            return len(due)

    def drain(self) -> int:
        total = 0
        while (count := self.step()) > 0:
            total += count
        return total

    def start(self) -> PayoutWorker:
        assert self._thread is None, "payout worker already started"
        self._thread = threading.Thread(target=self._run, name="payouts", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        idle = self.service.limits.idle_wait_s
        while not self._stop.is_set():
            try:
                if self.step() == 0:
                    time.sleep(idle)
            except Exception as exc:  # noqa: BLE001 - keep going; the step is retried
                log.error("payouts_step_failed", error=str(exc))
                time.sleep(idle)
