"""Payouts' rules: runs from payables (netting, minimums, carry-forward), maker-checker,
and the saga's transitions with the ledger transfers each one commits.

Pure: no I/O. The worker and the service ask these functions what to do, then hand the
answer (a :class:`Transition`) to the store, which writes the payout's new state and its
ledger transfers in one transaction (ADR 0021).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum

from tally.kernel.values import value
from tally.ledger.model import Account, OwnerKind, TransferKind, TransferRequest, TransferResult
from tally.payouts.rails import PayoutInstruction, RailAnswer, RailOutcome


class PayoutState(StrEnum):
    REQUESTED = "requested"  # in an approved run, nothing reserved yet
    RESERVED = "reserved"  # pending ledger transfers hold the amount (with a timeout)
    SUBMITTED = "submitted"  # handed to the rail (or maybe: the answer was unknown)
    CONFIRMED = "confirmed"  # paid: the reservation posted
    FAILED = "failed"  # definitely not paid: the reservation voided, payables released
    EXPIRED = "expired"  # the reservation timed out with no definite answer: a person looks

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = frozenset({PayoutState.CONFIRMED, PayoutState.FAILED})
# States the worker moves on by itself (a kill at any instant leaves a payout in one).
RESUMABLE = frozenset(
    {PayoutState.REQUESTED, PayoutState.RESERVED, PayoutState.SUBMITTED, PayoutState.EXPIRED}
)


class RunStatus(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"  # over the policy's amount: a checker must approve
    APPROVED = "approved"  # released: its payouts are the worker's


class Refusal(IntEnum):
    """Why a payouts request was refused, in the order the checks run (nothing moved)."""

    UNKNOWN_COUNTERPARTY = 1
    BLOCKED_COUNTERPARTY = 2
    NO_RAIL_FOR_CURRENCY = 3
    NOTHING_TO_PAY = 4
    RUN_NOT_FOUND = 5
    RUN_NOT_AWAITING_APPROVAL = 6
    MAKER_CANNOT_APPROVE = 7
    SECOND_FACTOR_REFUSED = 8
    UNKNOWN_RAIL = 9
    UNKNOWN_PAYOUT = 10
    ANSWER_FROM_ANOTHER_RAIL = 11
    TOO_MANY = 12
    PAYABLES_ALREADY_CLAIMED = 13
    BAD_INPUT = 14
    ANSWER_FOR_ANOTHER_RUN = 15

    @property
    def slug(self) -> str:
        return self.name.lower()


class PayoutRefused(ValueError):
    """A request refused with a :class:`Refusal` code and a sentence a person can act on."""

    def __init__(self, code: Refusal, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CounterpartyKind(StrEnum):
    PROVIDER = "provider"  # provider fees owed by operators
    PARTNER = "partner"  # commissions owed to partners' agents


@dataclass(frozen=True, slots=True)
class Counterparty:
    """Who is paid, where. ``id`` is ``<kind>:<party>`` (``provider:evolution``). ``rail``
    names the rail that pays it; ``account`` is an IBAN, a PSP payee id or, for the
    internal rail, the Tally ledger account credited."""

    id: str
    kind: CounterpartyKind
    party: str
    name: str
    rail: str
    account: str
    bic: str = ""
    blocked: bool = False

    @staticmethod
    def key(kind: CounterpartyKind | str, party: str) -> str:
        return f"{kind}:{party}"


@dataclass(frozen=True, slots=True)
class Payable:
    """One amount a closed period left owed: ``amount`` > 0 is owed *to* the counterparty,
    < 0 is owed *by* it (a negative commission). ``account_id`` is the ledger account it
    sits in (a ``fee_payable`` or ``commission_payable`` account)."""

    id: str
    counterparty: str
    currency: str
    amount: int
    account_id: str
    period: str = ""
    operator: str = ""


@dataclass(frozen=True, slots=True)
class Leg:
    """One payable account's part of a payout, signed as :class:`Payable`."""

    account_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class RunScope:
    """Which payables a run takes: one provider, one partner's subtree, or all; and
    optionally only one currency."""

    kind: str  # "provider" | "partner" | "all"
    party: str = ""
    currency: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("provider", "partner", "all"):
            raise PayoutRefused(
                Refusal.BAD_INPUT, f"a run's scope is provider, partner or all, not {self.kind!r}"
            )
        if self.kind != "all" and not self.party:
            raise PayoutRefused(Refusal.BAD_INPUT, f"a {self.kind} run names its {self.kind}")

    def describe(self) -> str:
        who = "all" if self.kind == "all" else f"{self.kind}:{self.party}"
        return f"{who}/{self.currency or '*'}"


_KEEP = object()  # Payout.moved: leave the field as it is


@value
class Payout:
    id: str
    run_id: str
    counterparty: str
    currency: str
    amount: int
    rail: str
    account: str
    beneficiary_name: str
    bic: str
    legs: tuple[Leg, ...]
    state: PayoutState
    updated_at: datetime
    reserved_until: datetime | None = None
    next_check_at: datetime | None = None
    rail_reference: str = ""
    reason: str = ""
    checks: int = 0  # how many times the rail was asked for its status

    @property
    def idempotency_key(self) -> str:
        """Derived from what the payout is, so a resubmission is the same payment."""
        digest = hashlib.sha256(
            f"{self.id}|{self.run_id}|{self.counterparty}|{self.currency}|{self.amount}".encode()
        ).hexdigest()
        return f"tally-{digest[:32]}"

    def moved(
        self,
        *,
        state: PayoutState | None = None,
        updated_at: datetime | None = None,
        reserved_until: object = _KEEP,  # a datetime, None, or _KEEP
        next_check_at: object = _KEEP,  # a datetime, None, or _KEEP
        rail_reference: str | None = None,
        reason: str | None = None,
        checks: int | None = None,
    ) -> Payout:
        """A copy with what changes (what the saga changes; the rest never does), built
        directly: the saga copies a payout at every step (``dataclasses.replace``
        introspects the class each time)."""
        return Payout(
            self.id, self.run_id, self.counterparty, self.currency, self.amount, self.rail,
            self.account, self.beneficiary_name, self.bic, self.legs,
            self.state if state is None else state,
            self.updated_at if updated_at is None else updated_at,
            self.reserved_until if reserved_until is _KEEP else reserved_until,  # type: ignore[arg-type]
            self.next_check_at if next_check_at is _KEEP else next_check_at,  # type: ignore[arg-type]
            self.rail_reference if rail_reference is None else rail_reference,
            self.reason if reason is None else reason,
            self.checks if checks is None else checks,
        )  # fmt: skip

    def instruction(self) -> PayoutInstruction:
        return PayoutInstruction(
            payout_id=self.id,
            idempotency_key=self.idempotency_key,
            run_id=self.run_id,
            counterparty=self.counterparty,
            beneficiary_name=self.beneficiary_name,
            account=self.account,
            bic=self.bic,
            amount_minor=self.amount,
            currency=self.currency,
            reference=f"Tally payout {self.id}",
        )


@dataclass(frozen=True, slots=True)
class RunLine:
    """One counterparty and currency in a run: what it is owed, what it owes, the net,
    and whether that net was paid (``payout_id``) or carried forward."""

    counterparty: str
    currency: str
    owed: int
    owing: int
    net: int
    payout_id: str = ""

    @property
    def carried(self) -> int:
        return 0 if self.payout_id else self.net


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    scope: str
    maker: str
    created_at: datetime
    status: RunStatus
    totals: Mapping[str, int]  # per currency, what the run pays
    lines: tuple[RunLine, ...] = ()
    approver: str = ""
    approved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PayoutPolicy:
    # The smallest net paid per currency, in minor units; less is carried forward.
    minimum_minor: Mapping[str, int] = field(default_factory=dict)
    minimum_default_minor: int = 1
    # A run paying more than this in any currency needs a second finance user's approval.
    approval_above_minor: Mapping[str, int] = field(default_factory=dict)
    approval_above_default_minor: int = 1_000_000
    # The reservation's timeout (the ledger voids it as expired after this).
    reservation_timeout_s: int = 3 * 86_400
    # How long after a SUBMITTED answer the worker asks the rail for the status itself.
    answer_wait_s: int = 3_600
    # How soon after an UNKNOWN answer (or a failed call) the worker asks again.
    status_retry_s: int = 60
    # How often an expired payout's rail is asked what became of it.
    expired_check_s: int = 3_600

    def minimum(self, currency: str) -> int:
        return max(1, self.minimum_minor.get(currency, self.minimum_default_minor))

    def needs_approval(self, totals: Mapping[str, int]) -> bool:
        return any(
            amount > self.approval_above_minor.get(cur, self.approval_above_default_minor)
            for cur, amount in totals.items()
        )


# -- building a run -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunPlan:
    payouts: tuple[Payout, ...]
    lines: tuple[RunLine, ...]
    claims: tuple[tuple[str, str], ...]  # (payable id, payout id)
    totals: Mapping[str, int]


def payout_id(run_id: str, n: int) -> str:
    return f"{run_id}-{n:06d}"


def plan_run(
    run_id: str,
    payables: Iterable[Payable],
    counterparties: Mapping[str, Counterparty],
    policy: PayoutPolicy,
    rail_supports: Mapping[str, frozenset[str] | None],
    now: datetime,
) -> RunPlan:
    """Net each counterparty's payables per currency; pay the nets at or over the minimum,
    carry the rest forward (their payables stay unclaimed for the next run).

    ``rail_supports``: per rail name, the currencies it pays (``None``: any). Refuses the
    whole run (:class:`PayoutRefused`) if a counterparty is unknown or blocked or its rail
    cannot pay the currency: nothing is claimed.
    """
    groups: dict[tuple[str, str], list[Payable]] = {}
    for p in payables:
        groups.setdefault((p.counterparty, p.currency), []).append(p)
    if not groups:
        raise PayoutRefused(
            Refusal.NOTHING_TO_PAY, "no unpaid payables of closed periods in this scope"
        )
    for cp_id, currency in sorted(groups):
        cp = counterparties.get(cp_id)
        if cp is None:
            raise PayoutRefused(
                Refusal.UNKNOWN_COUNTERPARTY,
                f"counterparty {cp_id} is not known: register its payment details first",
            )
        if cp.blocked:
            raise PayoutRefused(Refusal.BLOCKED_COUNTERPARTY, f"counterparty {cp_id} is blocked")
        if cp.rail not in rail_supports:
            raise PayoutRefused(
                Refusal.NO_RAIL_FOR_CURRENCY,
                f"counterparty {cp_id} names rail {cp.rail!r}, which is not configured",
            )
        supported = rail_supports[cp.rail]
        if supported is not None and currency not in supported:
            raise PayoutRefused(
                Refusal.NO_RAIL_FOR_CURRENCY,
                f"rail {cp.rail} of counterparty {cp_id} cannot pay {currency}",
            )
    payouts: list[Payout] = []
    lines: list[RunLine] = []
    claims: list[tuple[str, str]] = []
    totals: dict[str, int] = {}
    for cp_id, currency in sorted(groups):
        items = groups[(cp_id, currency)]
        owed = sum(p.amount for p in items if p.amount > 0)
        owing = -sum(p.amount for p in items if p.amount < 0)
        net = owed - owing
        if net < policy.minimum(currency):
            lines.append(RunLine(cp_id, currency, owed, owing, net))
            continue
        cp = counterparties[cp_id]
        by_account: dict[str, int] = {}
        for p in items:
            by_account[p.account_id] = by_account.get(p.account_id, 0) + p.amount
        legs = tuple(Leg(a, v) for a, v in sorted(by_account.items()) if v != 0)
        pid = payout_id(run_id, len(payouts) + 1)
        payouts.append(
            Payout(
                pid,
                run_id,
                cp_id,
                currency,
                net,
                cp.rail,
                cp.account,
                cp.name,
                cp.bic,
                legs,
                PayoutState.REQUESTED,
                now,
            )
        )
        claims.extend((p.id, pid) for p in sorted(items, key=lambda p: p.id))
        lines.append(RunLine(cp_id, currency, owed, owing, net, pid))
        totals[currency] = totals.get(currency, 0) + net
    return RunPlan(tuple(payouts), tuple(lines), tuple(claims), totals)


# -- the ledger side of the saga --------------------------------------------------------
def clearing_account(currency: str) -> Account:
    """Where paid money leaves the books: a bank or PSP statement is reconciled to it."""
    found = _CLEARING.get(currency)
    if found is None:
        found = _CLEARING[currency] = _clearing(currency)
    return found


_CLEARING: dict[str, Account] = {}


def _clearing(currency: str) -> Account:
    return Account(
        f"platform:payouts:clearing:{currency}",
        OwnerKind.PLATFORM,
        "platform",
        currency,
        "payout_clearing",
    )


def _sides(payout: Payout, leg: Leg) -> tuple[str, str, int]:
    clearing = clearing_account(payout.currency).id
    if leg.amount > 0:  # the payable goes down: debit it, credit what leaves
        return leg.account_id, clearing, leg.amount
    return clearing, leg.account_id, -leg.amount  # netted: the counterparty's debt is settled


def _chain(requests: list[TransferRequest]) -> tuple[TransferRequest, ...]:
    """Link all but the last: the legs of one payout succeed or fail together."""
    if len(requests) == 1:  # the common case, and a hot path (no copy)
        return (requests[0],)
    return tuple(replace(r, linked=i < len(requests) - 1) for i, r in enumerate(requests))


def reserve_transfers(payout: Payout, timeout_s: int, now: datetime) -> tuple[TransferRequest, ...]:
    out = []
    for i, leg in enumerate(payout.legs):
        debit, credit, amount = _sides(payout, leg)
        out.append(
            TransferRequest(
                f"payout:{payout.id}:reserve:{i}",
                debit,
                credit,
                amount,
                payout.currency,
                "payout_reserve",
                TransferKind.PENDING,
                timeout_s=timeout_s,
                occurred_at=now,
                event_ref=payout.id,
            )
        )
    return _chain(out)


def post_transfers(payout: Payout, now: datetime) -> tuple[TransferRequest, ...]:
    return _chain(
        [
            TransferRequest(
                f"payout:{payout.id}:post:{i}",
                kind=TransferKind.POST,
                pending_id=f"payout:{payout.id}:reserve:{i}",
                code="payout_post",
                occurred_at=now,
                event_ref=payout.id,
            )
            for i in range(len(payout.legs))
        ]
    )


def void_transfers(payout: Payout, now: datetime) -> tuple[TransferRequest, ...]:
    return _chain(
        [
            TransferRequest(
                f"payout:{payout.id}:void:{i}",
                kind=TransferKind.VOID,
                pending_id=f"payout:{payout.id}:reserve:{i}",
                code="payout_void",
                occurred_at=now,
                event_ref=payout.id,
            )
            for i in range(len(payout.legs))
        ]
    )


def late_transfers(payout: Payout, now: datetime) -> tuple[TransferRequest, ...]:
    """A payment the rail confirmed after the reservation expired: posted outright."""
    out = []
    for i, leg in enumerate(payout.legs):
        debit, credit, amount = _sides(payout, leg)
        out.append(
            TransferRequest(
                f"payout:{payout.id}:late:{i}",
                debit,
                credit,
                amount,
                payout.currency,
                "payout_late_post",
                occurred_at=now,
                event_ref=payout.id,
            )
        )
    return _chain(out)


# -- the saga -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Transition:
    """One payout's move: the store writes ``after`` (if the payout is still in
    ``expect``) with ``transfers`` in one transaction; if the ledger refuses the
    transfers it writes ``fallback`` instead (without transfers), or leaves the payout
    as it was when there is none. A payout written as FAILED frees its payables for a
    later run."""

    expect: PayoutState
    after: Payout
    transfers: tuple[TransferRequest, ...] = ()
    fallback: Payout | None = None
    alert: str = ""  # an alert kind to signal once this is committed ("" none)
    fallback_alert: str = ""  # the same, when the fallback was written instead
    clear_alert: str = ""  # an alert kind whose condition this ends

    @property
    def payout_id(self) -> str:
        return self.after.id


def reserve(payout: Payout, policy: PayoutPolicy, now: datetime) -> Transition:
    assert payout.state is PayoutState.REQUESTED
    until = now + timedelta(seconds=policy.reservation_timeout_s)
    after = payout.moved(state=PayoutState.RESERVED, reserved_until=until, updated_at=now)
    failed = payout.moved(
        state=PayoutState.FAILED,
        updated_at=now,
        reason="the ledger refused the reservation",
    )
    return Transition(
        PayoutState.REQUESTED,
        after,
        reserve_transfers(payout, policy.reservation_timeout_s, now),
        fallback=failed,
        fallback_alert="payouts.reservation_refused",
    )


def expired_by(payout: Payout, now: datetime) -> bool:
    return payout.reserved_until is not None and now >= payout.reserved_until


def _confirmed(payout: Payout, answer: RailAnswer, now: datetime) -> Transition:
    ref = answer.rail_reference or payout.rail_reference
    after = payout.moved(
        state=PayoutState.CONFIRMED,
        updated_at=now,
        rail_reference=ref,
        next_check_at=None,
        reason="",
    )
    if payout.state is PayoutState.EXPIRED or expired_by(payout, now):
        # Paid although the reservation lapsed: post it outright and say so.
        return Transition(
            payout.state,
            after,
            late_transfers(payout, now),
            alert="payouts.confirmed_after_expiry",
            clear_alert="payouts.reservation_expired",
        )
    return Transition(payout.state, after, post_transfers(payout, now))


def _failed(payout: Payout, answer: RailAnswer, now: datetime) -> Transition:
    after = payout.moved(
        state=PayoutState.FAILED,
        updated_at=now,
        rail_reference=answer.rail_reference or payout.rail_reference,
        reason=answer.reason or "rejected by the rail",
        next_check_at=None,
    )
    if payout.state is PayoutState.EXPIRED or expired_by(payout, now):
        # The ledger already released the reservation when it expired: nothing to void.
        return Transition(payout.state, after, (), clear_alert="payouts.reservation_expired")
    return Transition(payout.state, after, void_transfers(payout, now), fallback=after)


def _waiting(payout: Payout, answer: RailAnswer, policy: PayoutPolicy, now: datetime) -> Transition:
    """No definite answer: ask again later, never void; past the reservation's timeout
    the payout is expired (the ledger lets the reservation go) and a person is told."""
    ref = answer.rail_reference or payout.rail_reference
    if payout.state is PayoutState.EXPIRED:
        later = now + timedelta(seconds=policy.expired_check_s)
        return Transition(
            payout.state,
            payout.moved(
                next_check_at=later,
                updated_at=now,
                rail_reference=ref,
                checks=payout.checks + 1,
            ),
        )
    if expired_by(payout, now):
        after = payout.moved(
            state=PayoutState.EXPIRED,
            updated_at=now,
            rail_reference=ref,
            next_check_at=now + timedelta(seconds=policy.expired_check_s),
            reason=f"no definite answer from {payout.rail} before the reservation's timeout",
        )
        return Transition(payout.state, after, alert="payouts.reservation_expired")
    wait = (
        policy.answer_wait_s if answer.outcome is RailOutcome.SUBMITTED else policy.status_retry_s
    )
    assert payout.reserved_until is not None
    later = min(now + timedelta(seconds=wait), payout.reserved_until)
    after = payout.moved(
        state=PayoutState.SUBMITTED,
        updated_at=now,
        rail_reference=ref,
        next_check_at=later,
        checks=payout.checks + (answer.outcome is RailOutcome.UNKNOWN),
    )
    return Transition(payout.state, after)


def on_answer(
    payout: Payout, answer: RailAnswer, policy: PayoutPolicy, now: datetime
) -> Transition | None:
    """What an answer from the rail (to submit, to status, or arriving by itself) does to
    a payout; ``None``: nothing (a duplicate, or an answer that changes nothing)."""
    state = payout.state
    outcome = answer.outcome
    if state.final:
        return None  # duplicates, and contradictions the service reports (see contradicts)
    if state is PayoutState.REQUESTED:
        return None  # nothing was reserved, so nothing was submitted: not this payout's answer
    if outcome is RailOutcome.CONFIRMED:
        return _confirmed(payout, answer, now)
    if outcome is RailOutcome.REJECTED:
        return _failed(payout, answer, now)
    return _waiting(payout, answer, policy, now)


def contradicts(payout: Payout, answer: RailAnswer) -> bool:
    """A definite answer against a final state: paid after a failure, or refused after a
    payment. Never acted on by itself; a person is told."""
    return (payout.state is PayoutState.FAILED and answer.outcome is RailOutcome.CONFIRMED) or (
        payout.state is PayoutState.CONFIRMED and answer.outcome is RailOutcome.REJECTED
    )


def needs_status(payout: Payout, now: datetime) -> bool:
    """Whether the worker must ask the rail before anything else: a submitted or expired
    payout whose check is due, or a reserved one whose reservation lapsed (it may have
    been submitted just before a crash)."""
    if payout.state is PayoutState.RESERVED:
        return expired_by(payout, now)
    if payout.state in (PayoutState.SUBMITTED, PayoutState.EXPIRED):
        return payout.next_check_at is None or payout.next_check_at <= now
    return False


def summarise(payouts: Sequence[Payout]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in payouts:
        counts[p.state.value] = counts.get(p.state.value, 0) + 1
    return counts


def written(
    live: Sequence[Transition], results: Sequence[Sequence[TransferResult]]
) -> list[tuple[Transition, Payout]]:
    """Which payout each live transition writes, given the ledger's results for the
    transitions that carry transfers (in the same order): ``after`` when every transfer
    took effect, else ``fallback`` (a transition without one is left out: the payout
    stays as it was and is tried again)."""
    out: list[tuple[Transition, Payout]] = []
    found = iter(results)
    for t in live:
        if not t.transfers:
            out.append((t, t.after))
            continue
        codes = next(found)
        if all(r.code.ok for r in codes):
            out.append((t, t.after))
        elif t.fallback is not None:
            reason = ", ".join(sorted({r.code.slug for r in codes if not r.code.ok}))
            out.append((t, t.fallback.moved(reason=f"{t.fallback.reason} ({reason})")))
    return out


def clearing_accounts(transitions: Iterable[Transition]) -> list[Account]:
    currencies = sorted({t.after.currency for t in transitions if t.transfers})
    return [clearing_account(c) for c in currencies]
