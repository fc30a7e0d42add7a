"""The settlement engine's rules: from events to totals, accruals and ledger transfers.

Pure. A worker feeds :meth:`SettlementBook.settle` bounded batches of events in log
order; the book updates its running figures and returns the ledger transfers to post
and the rows to persist, which the worker commits in one transaction together with its
log position. Accruals are *target minus already accrued*, where the target is the
period fee (or commission) computed from the period's totals, so what has been accrued
equals the figure from the totals at every commit: accruals telescope by construction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from tally.events.model import VOIDABLE, EventKind, any_kind_key, candidates, feed_key
from tally.kernel.money import Rounding, round_minor
from tally.ledger.model import Account, AccountFlags, OwnerKind, TransferRequest
from tally.settlement.contracts import (
    ContractError,
    ContractTerms,
    FxPolicy,
    Totals,
    fee_parts,
    in_force,
)
from tally.settlement.fx import FxTable
from tally.settlement.partners import PartnerTree, share_rates
from tally.settlement.periods import Period, next_period, period_from_label, period_of
from tally.settlement.statements import Statement, build_statement

TRANSFER_ID_MAX = 120
# Commissions are rounded once per agent and period, half to even.
COMMISSION_ROUNDING = Rounding.HALF_EVEN


@dataclass(frozen=True, slots=True)
class SettlementEvent:
    """What settlement needs of a canonical event."""

    key: str  # the idempotency key
    kind: EventKind
    provider: str
    operator: str
    player: str
    game_type: str
    amount: int  # minor units of ``currency``; an adjustment may be negative
    currency: str
    occurred_at: datetime
    ref: str = ""  # rollback: the key of the event it voids
    agent: str = ""  # the partner-tree agent (store) the player belongs to
    region: str = ""
    # The same transaction's key on the other side: for an operator's feed report, the
    # provider's own key; for the provider's own event, the key the operator's feed report
    # of it has. Only the provider's counts (see ``_settle_one``). Empty for rollbacks.
    twin: str = ""
    from_feed: bool = False  # an operator's partner feed reported it, not the provider


@dataclass(frozen=True, slots=True, order=True)
class Bucket:
    """Where figures add up: one contract version's period, for one operator and game type."""

    contract_id: str
    version: int
    provider: str
    operator: str
    period: str
    game_type: str
    currency: str  # the contract's settlement currency
    region: str = ""
    # Buckets are dictionary keys on the hot path: hash once.
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "_hash",
            hash(
                (
                    self.contract_id,
                    self.version,
                    self.provider,
                    self.operator,
                    self.period,
                    self.game_type,
                    self.currency,
                    self.region,
                )
            ),
        )

    def __hash__(self) -> int:
        return self._hash

    @property
    def group(self) -> tuple[str, int, str, str, str]:
        """The fee is computed per contract version, operator and period."""
        return (self.contract_id, self.version, self.provider, self.operator, self.period)


@dataclass(frozen=True, slots=True)
class Effect:
    """What one event did to the figures, kept so a later rollback can undo exactly it."""

    key: str
    bucket: Bucket
    period_start: datetime  # start of the period the event belongs to (even if booked late)
    delta: Totals
    # Commission earned per agent, exact, so that a rollback takes back exactly it.
    commission: tuple[tuple[str, Decimal], ...] = ()
    late_of: str = ""  # the closed period it belonged to, when booked late
    rolled_back_by: str = ""


CommissionKey = tuple[str, str, str, str]  # operator, agent, period, currency


@dataclass(frozen=True, slots=True)
class WaitingRollback:
    """A rollback that arrived before its original: what it names, and when it fell.

    ``contract_id``, ``period`` and ``period_start`` are the contract period its own
    instant falls in, by the rules of the contract version in force then (as its
    original would have been bucketed); ``None`` when no contract was in force. Kept so
    that one still waiting after its period closed can be told apart: it voided nothing
    in that period. Rollbacks stored before these were recorded have only ref and key.
    """

    ref: str  # the original it names
    key: str  # its own key
    occurred_at: datetime | None = None
    operator: str | None = None
    currency: str | None = None
    contract_id: str | None = None
    period: str | None = None
    period_start: datetime | None = None

    def outlived_close(self, closed: Mapping[tuple[str, str], Period]) -> bool | None:
        """Whether its period is closed, given the last closed period per (contract,
        operator) (periods close in order); ``None`` when its period is not known."""
        if self.contract_id is None or self.operator is None or self.period_start is None:
            return None
        last = closed.get((self.contract_id, self.operator))
        return last is not None and self.period_start < last.end


@dataclass(slots=True)
class OpenFigures:
    """The book's running state: loaded when a worker starts, updated by every batch."""

    totals: dict[Bucket, Totals] = field(default_factory=dict)
    fee_accrued: dict[tuple[str, int, str, str, str], int] = field(default_factory=dict)
    commission_exact: dict[CommissionKey, Decimal] = field(default_factory=dict)
    commission_accrued: dict[CommissionKey, int] = field(default_factory=dict)
    # The last closed period per (contract id, operator), and the negative fee it carried.
    closed: dict[tuple[str, str], Period] = field(default_factory=dict)
    carried: dict[tuple[str, str], int] = field(default_factory=dict)
    # Buckets by contract period, so a batch looks only at the periods it touched.
    groups: dict[tuple[str, int, str, str, str], set[Bucket]] = field(default_factory=dict)

    def reindex(self) -> None:
        self.groups = {}
        for bucket in self.totals:
            self.groups.setdefault(bucket.group, set()).add(bucket)


@dataclass(slots=True)
class BatchOutcome:
    # Effects of the batch's new events (and of originals that a rollback voided).
    effects: dict[str, Effect] = field(default_factory=dict)
    # Which of them were stored before the batch (a voided original): rewritten, not new.
    rewritten: set[str] = field(default_factory=set)
    # Rollbacks that arrived before their original, by the original key they name.
    orphans: dict[str, WaitingRollback] = field(default_factory=dict)
    # Early rollbacks that found their original in this batch.
    orphans_resolved: list[str] = field(default_factory=list)
    accounts: dict[str, Account] = field(default_factory=dict)
    transfers: list[TransferRequest] = field(default_factory=list)
    touched: set[Bucket] = field(default_factory=set)
    # What the batch moved through the GGR accounts, per bucket (signed).
    moved: dict[Bucket, Totals] = field(default_factory=dict)
    # The same while the batch runs: turnover, wins, bonuses, jackpot contributions.
    running: dict[Bucket, list[int]] = field(default_factory=dict)
    touched_commissions: set[CommissionKey] = field(default_factory=set)
    # Fee accruals (per contract version and period) the batch set: a period's versions
    # share one tier ladder and one rounding, so a version's part can move when another
    # version's figures do.
    fee_groups: set[tuple[str, int, str, str, str]] = field(default_factory=set)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (event key, reason)


def delta_of(kind: EventKind, amount: int) -> Totals:
    if kind is EventKind.BET:
        return Totals(turnover=amount)
    if kind is EventKind.WIN or kind is EventKind.JACKPOT_WIN:
        return Totals(wins=amount)
    if kind is EventKind.BONUS_WIN:
        # Paid from bonus funds: a bonus cost (deducted for NGR), not a cash win in GGR.
        return Totals(bonuses=amount)
    if kind is EventKind.ADJUSTMENT:
        # In the house's favour it counts like a stake, against it like a win.
        return Totals(turnover=amount) if amount >= 0 else Totals(wins=-amount)
    return Totals()


# -- the chart of accounts settlement posts to (docs/concepts/chart-of-accounts.md) -------
def fee_accounts(provider: str, operator: str, currency: str) -> tuple[Account, Account]:
    return (
        Account(
            f"operator:{operator}:provider_fees:{provider}:{currency}",
            OwnerKind.OPERATOR,
            operator,
            currency,
            "provider_fee_expense",
        ),
        Account(
            f"provider:{provider}:fee_payable:{operator}:{currency}",
            OwnerKind.PROVIDER,
            provider,
            currency,
            "fee_payable",
        ),
    )


def commission_accounts(operator: str, agent: str, currency: str) -> tuple[Account, Account]:
    return (
        Account(
            f"operator:{operator}:commission_expense:{currency}",
            OwnerKind.OPERATOR,
            operator,
            currency,
            "commission_expense",
        ),
        Account(
            f"partner:{agent}:commission_payable:{currency}",
            OwnerKind.PARTNER,
            agent,
            currency,
            "commission_payable",
        ),
    )


def ggr_accounts(bucket: Bucket) -> tuple[Account, Account]:
    cur = bucket.currency
    return (
        Account(
            f"operator:{bucket.operator}:player_clearing:{cur}",
            OwnerKind.OPERATOR,
            bucket.operator,
            cur,
            "player_clearing",
        ),
        Account(
            f"operator:{bucket.operator}:ggr:{bucket.provider}:{bucket.game_type}:{cur}",
            OwnerKind.OPERATOR,
            bucket.operator,
            cur,
            "ggr",
            AccountFlags.NONE,
            {"provider": bucket.provider, "game_type": bucket.game_type},
        ),
    )


class SettlementBook:
    """Applies contracts and partner trees to events; holds the open periods' figures."""

    def __init__(
        self,
        contracts: Callable[[], Sequence[ContractTerms]],
        trees: Callable[[str], PartnerTree],
        fx: Callable[[], FxTable],
        figures: OpenFigures | None = None,
    ) -> None:
        self._contracts_source = contracts
        self._trees_source = trees
        self._fx_source = fx
        self.figures = figures or OpenFigures()
        self._snapshot()
        self.figures.reindex()

    def _snapshot(self) -> None:
        """Take the configuration once per batch: a batch sees one consistent version."""
        self._contracts_now = list(self._contracts_source())
        self._by_provider: dict[str, list[ContractTerms]] = {}
        for terms in self._contracts_now:
            self._by_provider.setdefault(terms.provider, []).append(terms)
        self._fx_now = self._fx_source()
        self._trees_now: dict[str, PartnerTree] = {}
        self._periods: dict[tuple[str, int], Period] = {}
        # Within a batch: one Bucket object per place (figures.closed is fixed), and one
        # checked partner path per tree version, with each agent's share rates.
        self._places: dict[tuple[object, ...], tuple[Bucket, str]] = {}
        self._paths: dict[tuple[str, str, int], tuple[tuple[str, Decimal, Decimal], ...]] = {}

    def _contracts(self) -> list[ContractTerms]:
        return self._contracts_now

    def _fx(self) -> FxTable:
        return self._fx_now

    def _trees(self, operator: str) -> PartnerTree:
        tree = self._trees_now.get(operator)
        if tree is None:
            tree = self._trees_now[operator] = self._trees_source(operator)
        return tree

    def _period(self, terms: ContractTerms, when: datetime) -> Period:
        # Consecutive events mostly fall in the same period: reuse the last one found.
        key = (terms.contract_id, terms.version)
        last = self._periods.get(key)
        if last is None or not last.contains(when):
            last = self._periods[key] = period_of(when, terms.period, terms.timezone)
        return last

    # -- placing an event -----------------------------------------------------------------
    def _terms(self, contract_id: str, version: int) -> ContractTerms:
        for terms in self._contracts():
            if terms.contract_id == contract_id and terms.version == version:
                return terms
        raise ContractError(f"contract {contract_id} v{version} is not known")

    def _open(self, bucket: Bucket, terms: ContractTerms, start: datetime) -> tuple[Bucket, str]:
        """The bucket itself, or, if its period is closed, the same in the first open one."""
        closed = self.figures.closed.get((terms.contract_id, bucket.operator))
        if closed is None or start >= closed.end:
            return bucket, ""
        open_period = next_period(closed, terms.period, terms.timezone)
        return replace(bucket, period=open_period.label), bucket.period

    def _effect(self, event: SettlementEvent) -> Effect:
        terms = in_force(
            self._by_provider.get(event.provider, ()),
            event.provider,
            event.operator,
            event.occurred_at,
        )
        period = self._period(terms, event.occurred_at)
        delta = delta_of(event.kind, event.amount)
        currency = terms.settlement_currency
        if event.currency != currency:
            if terms.fx_policy is FxPolicy.PERIOD_END:
                # Kept in the event's currency; converted at the period-end rate. A rate
                # must exist by the event's instant, or the event cannot be settled.
                self._fx().rate(event.currency, currency, event.occurred_at)
                currency = event.currency
            else:
                delta = self._convert(delta, event, terms)
        place = (
            terms.contract_id,
            terms.version,
            period.label,
            event.operator,
            event.game_type,
            event.region,
            currency,
        )
        found = self._places.get(place)
        if found is None:
            bucket = Bucket(
                terms.contract_id,
                terms.version,
                event.provider,
                event.operator,
                period.label,
                event.game_type,
                currency,
                event.region,
            )
            found = self._places[place] = self._open(bucket, terms, period.start)
        bucket, late_of = found
        commission: tuple[tuple[str, Decimal], ...] = ()
        if event.agent:
            turnover, ggr = delta.turnover, delta.ggr
            commission = tuple(
                (agent, rolling * turnover + losing * ggr)
                for agent, rolling, losing in self._share_rates(event)
            )
        return Effect(event.key, bucket, period.start, delta, commission, late_of)

    def _share_rates(self, event: SettlementEvent) -> tuple[tuple[str, Decimal, Decimal], ...]:
        """Each agent's share of rolling and losing rates on the event's partner path, by
        agent id: what :func:`exact_shares` multiplies, checked once per tree version."""
        tree = self._trees(event.operator)
        key = (event.operator, event.agent, tree.epoch(event.occurred_at))
        rates = self._paths.get(key)
        if rates is None:
            path = tree.path(event.agent, event.occurred_at)
            rates = self._paths[key] = tuple(
                (agent, rolling, losing)
                for agent, (rolling, losing) in sorted(share_rates(path).items())
            )
        return rates

    def _convert(self, delta: Totals, event: SettlementEvent, terms: ContractTerms) -> Totals:
        conv = self._fx().converter(
            event.currency, terms.settlement_currency, event.occurred_at, terms.rounding
        )
        return Totals(
            conv(delta.turnover),
            conv(delta.wins),
            conv(delta.bonuses),
            conv(delta.jackpot_contributions),
        )

    # -- a batch ----------------------------------------------------------------------------
    def settle(
        self,
        batch_id: str,
        events: Iterable[SettlementEvent],
        originals: Mapping[str, Effect],
        orphans: Mapping[str, str],
    ) -> BatchOutcome:
        """Settle a batch.

        ``batch_id`` makes the transfer ids of this batch unique (e.g. its log positions);
        ``originals`` are stored effects of events the batch's rollbacks name, and
        ``orphans`` stored early rollbacks (original key -> rollback key) for its events.
        """
        self._snapshot()
        out = BatchOutcome()
        known: dict[str, Effect] = dict(originals)
        waiting: dict[str, str] = dict(orphans)
        for event in events:
            try:
                self._settle_one(event, known, waiting, out)
            except (ContractError, LookupError, ValueError) as exc:
                out.problems.append((event.key, str(exc)))
        out.rewritten = {key for key in originals if key in out.effects}
        self._fold(out)
        self._post_ggr(batch_id, out)
        self._accrue_fees(batch_id, out)
        self._accrue_commissions(batch_id, out)
        return out

    def _settle_one(
        self,
        event: SettlementEvent,
        known: dict[str, Effect],
        waiting: dict[str, str],
        out: BatchOutcome,
    ) -> None:
        if event.kind is EventKind.ROUND_END:
            return
        if event.kind is not EventKind.ROLLBACK and event.key in known:
            return  # delivered again: it counts once
        if event.kind is EventKind.ROLLBACK:
            self._settle_rollback(event, known, waiting, out)
            return
        effect = self._effect(event)
        twin = known.get(event.twin) if event.twin else None
        if twin is not None and twin.bucket.operator == event.operator:
            # A provider's own event is the truth for its transaction (in wallet mode it is
            # what moved the money); an operator's feed report of it never counts beside it.
            if event.from_feed:
                # The provider's came first: the report is recorded and counts for nothing.
                if waiting.pop(event.key, None) is not None:
                    out.orphans_resolved.append(event.key)
                known[event.key] = out.effects[event.key] = replace(
                    effect, rolled_back_by=event.twin
                )
                return
            if not twin.rolled_back_by:
                # The report came first and was counted: it is taken back, as if voided.
                self._undo(event.twin, twin, event.key, known, out)
        waited_as = event.key
        rollback = waiting.pop(waited_as, None)
        if rollback is None and event.kind in VOIDABLE:
            # A rollback that named the transaction without its kind.
            waited_as = any_kind_key(event.key)
            rollback = waiting.pop(waited_as, None)
        if rollback is not None:
            # Its rollback came first: the event is recorded and counts for nothing.
            effect = replace(effect, rolled_back_by=rollback)
            out.orphans_resolved.append(waited_as)
        else:
            self._add(effect.bucket, effect.delta, effect.commission, +1, out)
        known[event.key] = out.effects[event.key] = effect

    def _settle_rollback(
        self,
        event: SettlementEvent,
        known: dict[str, Effect],
        waiting: dict[str, str],
        out: BatchOutcome,
    ) -> None:
        found = [known[key] for key in candidates(event.ref) if key in known]
        if len(found) > 1:
            names = ", ".join(e.key for e in found)
            out.problems.append(
                (
                    event.key,
                    f"ref {event.ref} is ambiguous: it names {names}; "
                    "name the original by its full key",
                )
            )
            return
        if not found:
            # Its original has not arrived: remember, and cancel it when it does.
            waiting[event.ref] = event.key
            out.orphans[event.ref] = self._waiting(event)
            return
        original = found[0]
        if original.rolled_back_by == event.key:
            return  # the same rollback delivered again
        if event.from_feed and original.rolled_back_by == event.ref.removeprefix(
            feed_key(event.operator, "")
        ):
            # A feed report that the provider's own event of it superseded (voided by
            # the provider's key): it counts for nothing already, nothing to undo.
            return
        if original.rolled_back_by:
            out.problems.append(
                (
                    event.key,
                    f"{event.ref} was already rolled back by "
                    f"{original.rolled_back_by}; nothing to undo",
                )
            )
            return
        self._undo(original.key, original, event.key, known, out)

    def _waiting(self, event: SettlementEvent) -> WaitingRollback:
        """The early rollback with the contract period its instant falls in, if any."""
        waiting = WaitingRollback(
            event.ref, event.key, event.occurred_at, event.operator, event.currency
        )
        try:
            terms = in_force(
                self._by_provider.get(event.provider, ()),
                event.provider,
                event.operator,
                event.occurred_at,
            )
        except ContractError:
            # It still waits for its original; only its period cannot be said.
            return waiting
        period = self._period(terms, event.occurred_at)
        return replace(
            waiting, contract_id=terms.contract_id, period=period.label, period_start=period.start
        )

    def _undo(
        self, key: str, original: Effect, by: str, known: dict[str, Effect], out: BatchOutcome
    ) -> None:
        """Take back exactly what ``original`` (the effect of ``key``) added; ``by`` voids it."""
        bucket = original.bucket
        bucket, _ = self._open(
            bucket, self._terms(bucket.contract_id, bucket.version), original.period_start
        )
        self._add(bucket, original.delta, original.commission, -1, out)
        known[key] = out.effects[key] = replace(original, rolled_back_by=by)

    def _add(
        self,
        bucket: Bucket,
        delta: Totals,
        commission: Sequence[tuple[str, Decimal]],
        sign: int,
        out: BatchOutcome,
    ) -> None:
        running = out.running.get(bucket)
        if running is None:
            running = out.running[bucket] = [0, 0, 0, 0]
        running[0] += sign * delta.turnover
        running[1] += sign * delta.wins
        running[2] += sign * delta.bonuses
        running[3] += sign * delta.jackpot_contributions
        if commission:
            exacts = self.figures.commission_exact
            for agent, exact in commission:
                key = (bucket.operator, agent, bucket.period, bucket.currency)
                signed = exact if sign > 0 else -exact
                exacts[key] = exacts.get(key, Decimal(0)) + signed
                out.touched_commissions.add(key)

    def _fold(self, out: BatchOutcome) -> None:
        """Add what the batch moved to the running figures."""
        figures = self.figures
        for bucket, (turnover, wins, bonuses, jackpot) in out.running.items():
            change = Totals(turnover, wins, bonuses, jackpot)
            before = figures.totals.get(bucket)
            if before is None:
                figures.groups.setdefault(bucket.group, set()).add(bucket)
                before = Totals()
            figures.totals[bucket] = before + change
            out.moved[bucket] = change
            out.touched.add(bucket)

    # -- period close -------------------------------------------------------------------
    def close_period(self, contract_id: str, operator: str, label: str, now: datetime) -> Closing:
        """Freeze a period: its statement, and the transfer that settles the fee in full.

        Periods close in order and only after they end; events that arrive for a closed
        period are booked into the first open one, so a closed period never changes.
        """
        self._snapshot()
        versions = sorted(
            (t for t in self._contracts() if t.contract_id == contract_id),
            key=lambda t: (t.effective_from, t.version),
        )
        if not versions:
            raise PeriodCloseError(f"contract {contract_id} is not known")
        shape = versions[-1]
        try:
            period = period_from_label(label, shape.period, shape.timezone)
        except ValueError as exc:
            raise PeriodCloseError(str(exc)) from None
        if now < period.end:
            raise PeriodCloseError(
                f"period {label} ends at {period.end.isoformat()}; it cannot close before"
            )
        figures = self.figures
        key = (contract_id, operator)
        closed = figures.closed.get(key)
        if closed is not None:
            expected = next_period(closed, shape.period, shape.timezone)
            if period.start < expected.start:
                raise PeriodCloseError(f"period {label} of {contract_id}/{operator} is closed")
            if period != expected:
                raise PeriodCloseError(f"close {expected.label} before {label}")
        in_force_at_end = [t for t in versions if t.effective_from < period.end]
        if not in_force_at_end:
            raise PeriodCloseError(f"no version of {contract_id} was in force in {label}")
        rules = in_force_at_end[-1]
        by_version = self._period_versions(contract_id, rules.provider, operator, label)
        accrued = sum(
            figures.fee_accrued.get((contract_id, t.version, t.provider, operator, label), 0)
            for t in versions
        )
        statement = build_statement(
            by_version,
            rules,
            operator,
            period,
            carried_in=figures.carried.get(key, 0),
            accrued_before_close=accrued,
        )
        out = BatchOutcome()
        expense, payable = fee_accounts(rules.provider, operator, rules.settlement_currency)
        self._post(
            out,
            f"close:{contract_id}:{operator}:{label}:fee",
            expense,
            payable,
            statement.close_adjustment,
            "fee_close_adjustment",
            {"contract": contract_id, "period": label},
        )
        figures.closed[key] = period
        figures.carried[key] = statement.fee.carried_out
        return Closing(statement, out.accounts, out.transfers)

    # -- ledger postings ----------------------------------------------------------------
    def _post(
        self,
        out: BatchOutcome,
        tid: str,
        debit: Account,
        credit: Account,
        amount: int,
        code: str,
        metadata: Mapping[str, str],
    ) -> None:
        if amount == 0:
            return
        if amount < 0:
            debit, credit, amount = credit, debit, -amount
        out.accounts[debit.id] = debit
        out.accounts[credit.id] = credit
        if len(tid) > TRANSFER_ID_MAX:
            # Long names would break the ledger's id limit; a digest keeps ids unique.
            tid = tid[:80] + ":" + hashlib.sha256(tid.encode()).hexdigest()[:32]
        out.transfers.append(
            TransferRequest(
                tid, debit.id, credit.id, amount, debit.currency, code, metadata=dict(metadata)
            )
        )

    def _post_ggr(self, batch_id: str, out: BatchOutcome) -> None:
        """Stakes flow from the operator's player clearing into GGR, wins flow back."""
        for bucket, moved in sorted(out.moved.items()):
            players, ggr = ggr_accounts(bucket)
            name = _bucket_name(bucket)
            meta = {"contract": bucket.contract_id, "period": bucket.period}
            self._post(
                out,
                f"settle:{batch_id}:stakes:{name}",
                players,
                ggr,
                moved.turnover,
                "stakes",
                meta,
            )
            self._post(
                out, f"settle:{batch_id}:wins:{name}", ggr, players, moved.wins, "wins", meta
            )

    def _accrue_fees(self, batch_id: str, out: BatchOutcome) -> None:
        """Each touched period's fee, from all its versions' totals, rounded once and split
        into the versions' parts (:func:`fee_parts`); each part posts what it moved."""
        figures = self.figures
        periods = {(g[0], g[2], g[3], g[4]) for g in {bucket.group for bucket in out.touched}}
        for contract_id, provider, operator, period in sorted(periods):
            versions = self._period_versions(contract_id, provider, operator, period)
            parts = {terms.version: part for terms, part in fee_parts(versions)}
            for terms, _ in versions:
                group = (contract_id, terms.version, provider, operator, period)
                target = parts.get(terms.version, 0)
                accrued = figures.fee_accrued.get(group, 0)
                if target == accrued and group in figures.fee_accrued:
                    continue
                expense, payable = fee_accounts(provider, operator, terms.settlement_currency)
                self._post(
                    out,
                    f"settle:{batch_id}:fee:{contract_id}:{terms.version}:{operator}:{period}",
                    expense,
                    payable,
                    target - accrued,
                    "fee_accrual",
                    {"contract": contract_id, "period": period},
                )
                figures.fee_accrued[group] = target
                out.fee_groups.add(group)

    def _period_versions(
        self, contract_id: str, provider: str, operator: str, period: str
    ) -> list[tuple[ContractTerms, dict[str, Totals]]]:
        """A contract period's totals per game type, for each version that has figures."""
        figures = self.figures
        found: list[tuple[ContractTerms, dict[str, Totals]]] = []
        for terms in self._contracts():
            if terms.contract_id != contract_id or terms.provider != provider:
                continue
            group = (contract_id, terms.version, provider, operator, period)
            buckets = figures.groups.get(group)
            if buckets:
                totals = {b: figures.totals[b] for b in buckets}
                found.append((terms, group_totals(terms, period, totals, self._fx())))
        return found

    def _accrue_commissions(self, batch_id: str, out: BatchOutcome) -> None:
        figures = self.figures
        for key in sorted(out.touched_commissions):
            operator, agent, period, currency = key
            target = round_minor(figures.commission_exact[key], COMMISSION_ROUNDING)
            accrued = figures.commission_accrued.get(key, 0)
            expense, payable = commission_accounts(operator, agent, currency)
            self._post(
                out,
                f"settle:{batch_id}:commission:{operator}:{agent}:{period}:{currency}",
                expense,
                payable,
                target - accrued,
                "commission_accrual",
                {"agent": agent, "period": period},
            )
            figures.commission_accrued[key] = target


@dataclass(frozen=True, slots=True)
class Closing:
    statement: Statement
    accounts: dict[str, Account]
    transfers: list[TransferRequest]


class PeriodCloseError(ValueError):
    """A period that cannot be closed now (not ended, out of order, unknown contract)."""


def group_totals(
    terms: ContractTerms, period_label: str, buckets: Mapping[Bucket, Totals], fx: FxTable
) -> dict[str, Totals]:
    """One contract period's totals per game type, in the settlement currency.

    Under the period-end FX policy each game type's totals are summed per currency first,
    then converted at the rate in force at the period's end, each figure rounded once.
    """
    target = terms.settlement_currency
    sums: dict[tuple[str, str], Totals] = {}
    for bucket, totals in buckets.items():
        key = (bucket.game_type, bucket.currency)
        sums[key] = sums.get(key, Totals()) + totals
    end: datetime | None = None
    by_game_type: dict[str, Totals] = {}
    for (game_type, currency), totals in sorted(sums.items()):
        if currency != target:
            if end is None:
                end = period_from_label(period_label, terms.period, terms.timezone).end

            def conv(amount: int, source: str = currency, at: datetime = end) -> int:
                return fx.convert(amount, source, target, at, terms.rounding)

            totals = Totals(
                conv(totals.turnover),
                conv(totals.wins),
                conv(totals.bonuses),
                conv(totals.jackpot_contributions),
            )
        by_game_type[game_type] = by_game_type.get(game_type, Totals()) + totals
    return by_game_type


def _bucket_name(b: Bucket) -> str:
    return (
        f"{b.contract_id}:{b.version}:{b.operator}:{b.period}:{b.game_type}:{b.currency}:{b.region}"
    )
