"""Wallet mode: the player's balance lives in the ledger and provider callbacks move it.

A bet debits the player's wallet account (which may never go below zero) and credits the
operator's player-clearing account; a win does the reverse; a rollback reverses the
transfer of the transaction it names. All transfers of one call are one linked chain, so
a call with a bet and a win succeeds or fails as a whole. Every answer carries the
balance the ledger committed.

After the ledger commits, the call's canonical events go to the event log (deduplicated
by key), so settlement sees exactly what the wallet did. If the process dies in between,
the provider's retry finds the transfers already there (``exists``) and appends the
events then.

A rollback for a transaction never seen is answered as the protocol requires and
*marked*; if that transaction arrives later it is cancelled: not applied, but still
logged, so settlement pairs it with its rollback and counts neither.

Calls for one player are serialised (striped locks), so a bet and its rollback never
race; one gateway process owns a player at a time. Many calls can be handled at once
(``handle_many``): the answers are those of handling them one by one, and the calls of
different players share their commits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog

from tally.audit.ports import Transaction
from tally.audit.service import Auditing
from tally.events.model import Event, EventKind, idempotency_key
from tally.events.ports import Appended
from tally.kernel.clock import Clock
from tally.kernel.errors import RetryableError
from tally.kernel.money import MoneyError, parse_amount
from tally.ledger.model import (
    Account,
    AccountFlags,
    AccountResult,
    AccountResultCode,
    Balance,
    OwnerKind,
    ResultCode,
    Transfer,
    TransferRequest,
    TransferResult,
)
from tally.ledger.service import LedgerService
from tally.quarantine.inputs import InputQuarantine, Reason, Refused
from tally.wallet.model import (
    TX_ID_MAX,
    CallKind,
    OpOutcome,
    OpStatus,
    Wallet,
    WalletAnswer,
    WalletCall,
    WalletError,
    WalletOp,
    clearing_account,
    deposits_account,
)
from tally.wallet.ports import Appender, WalletMarks

log = structlog.get_logger("tally.wallet")

LOCK_STRIPES = 256  # per-player serialisation without a lock per player
OPEN_CHUNK = 1_000  # deposits per ledger submission when many wallets are opened
WALLET_CODE = "wallet"
_CREDITING = frozenset(
    {EventKind.WIN, EventKind.JACKPOT_WIN, EventKind.BONUS_WIN, EventKind.ADJUSTMENT}
)


def wallet_account_of(w: Wallet) -> Account:
    """The ledger account that holds ``w``: never below zero, with what events carry."""
    meta = {"operator": w.operator, "region": w.region, "agent": w.agent}
    return Account(
        w.account_id,
        OwnerKind.PLAYER,
        w.player,
        w.currency,
        "wallet",
        AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        {k: v for k, v in meta.items() if v},
    )


def deposit_request(w: Wallet, amount: int, reference: str) -> TransferRequest:
    """Money into ``w`` from its operator's deposits account (``reference``: the id)."""
    return TransferRequest(
        id=f"deposit:{reference}",
        debit_account_id=deposits_account(w.operator, w.currency),
        credit_account_id=w.account_id,
        amount=amount,
        currency=w.currency,
        code="deposit",
    )


def _accounts_of(wallets: Sequence[Wallet]) -> list[Account]:
    """The wallets' accounts and their operators' clearing and deposits accounts."""
    sides = {(w.operator, w.currency) for w in wallets}
    accounts = [
        Account(clearing_account(op, cur), OwnerKind.OPERATOR, op, cur, "player_clearing")
        for op, cur in sorted(sides)
    ] + [
        Account(deposits_account(op, cur), OwnerKind.OPERATOR, op, cur, "player_deposits")
        for op, cur in sorted(sides)
    ]
    return accounts + [wallet_account_of(w) for w in wallets]


def _wallet_of(account: Account) -> Wallet:
    meta = account.metadata
    return Wallet(
        player=account.owner_id,
        operator=meta.get("operator", ""),
        currency=account.currency,
        region=meta.get("region", ""),
        agent=meta.get("agent", ""),
    )


class WalletService:
    def __init__(
        self,
        ledger: LedgerService,
        log: Appender,
        marks: WalletMarks,
        quarantine: InputQuarantine,
        clock: Clock,
        *,
        game_type: Callable[[str, str], str] | None = None,
    ) -> None:
        """``game_type(provider, game)`` names a game's type for contracts (default "other")."""
        self.ledger = ledger
        self.log = log
        self.marks = marks
        self.quarantine = quarantine
        self.clock = clock
        self.game_type = game_type or (lambda provider, game: "other")
        self._locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        # The names (players, transactions) of the calls in rounds under way, in any
        # thread: batches handled at once never run two calls that share one.
        self._busy: set[str] = set()
        self._busy_changed = threading.Condition()
        self._wallets: dict[tuple[str, str], Wallet] = {}

    # -- wallets --------------------------------------------------------------------------
    def open(self, wallet: Wallet, *, by: Auditing) -> Wallet:
        """Create the player's wallet account (and the operator's side); idempotent. A
        wallet opened now is recorded on ``by``'s trail in the same transaction."""
        now = self.clock.now()

        def record(tx: Transaction, created: list[AccountResult], _: object) -> None:
            for result in created:
                if not result.code.ok:
                    raise ValueError(f"account {result.id}: {result.code.slug}")
            if any(r.id == wallet.account_id and r.code is AccountResultCode.OK for r in created):
                after = {"operator": wallet.operator, "currency": wallet.currency}
                by.record_in(tx, "wallet.opened", f"wallet:{wallet.account_id}", now, after=after)

        self.ledger.write_audited(_accounts_of([wallet]), [], record)
        return wallet

    def open_many(self, wallets: Sequence[Wallet], funding: int = 0, reference: str = "") -> None:
        """Open many wallets at once and, with ``funding``, deposit that much in each
        (deposit ids ``<reference>:<player>:<currency>``); idempotent."""
        for created in self.ledger.create_accounts(_accounts_of(wallets)):
            if not created.code.ok:
                raise ValueError(f"account {created.id}: {created.code.slug}")
        if not funding:
            return
        for start in range(0, len(wallets), OPEN_CHUNK):
            requests = [
                deposit_request(w, funding, f"{reference}:{w.player}:{w.currency}")
                for w in wallets[start : start + OPEN_CHUNK]
            ]
            for moved in self.ledger.transfer(requests):
                if not moved.code.ok:
                    raise ValueError(f"deposit {moved.id}: {moved.code.slug}")

    def deposit(
        self, wallet: Wallet, amount: int, reference: str, *, by: Auditing
    ) -> TransferResult:
        """Money in from the operator's side (the operator's cashier, outside Tally). A
        deposit that moves money is recorded on ``by``'s trail in the same transaction (a
        repeated reference moves nothing and records nothing)."""
        now = self.clock.now()
        request = deposit_request(wallet, amount, reference)

        def record(tx: Transaction, _: object, moved: list[TransferResult]) -> None:
            if moved[0].code is ResultCode.OK:
                after = {"amount": amount, "currency": wallet.currency, "reference": reference}
                by.record_in(
                    tx, "wallet.deposited", f"wallet:{wallet.account_id}", now, after=after
                )

        _, (result,) = self.ledger.write_audited([], [request], record)
        return result

    def find(self, player: str, currency: str = "") -> Wallet | None:
        """The player's one wallet in ``currency`` (empty: its only one, whatever the
        currency); None if unknown, or if several and none named."""
        self._find_many([(player, currency)])
        return self._wallets.get((player, currency))

    def _find_many(self, wanted: Sequence[tuple[str, str]]) -> None:
        """The wallets of ``(player, currency)`` pairs not cached yet, read in one go and
        cached (see :meth:`find`): a round reads its players' at once, since a gateway
        that starts under load would otherwise read them one call at a time (in its
        first second, nearly every call's). Only what was found is cached."""
        missing = {player for player, currency in wanted if (player, currency) not in self._wallets}
        if not missing:
            return
        found: dict[str, list[Wallet]] = {}
        for account, _ in self.ledger.balances_by_owners(OwnerKind.PLAYER, sorted(missing)):
            if account.purpose == "wallet":
                found.setdefault(account.owner_id, []).append(_wallet_of(account))
        for player, wallets in found.items():
            if len(wallets) == 1:
                self._wallets[(player, "")] = wallets[0]
            for currency in {w.currency for w in wallets}:
                named = [w for w in wallets if w.currency == currency]
                if len(named) == 1:
                    self._wallets[(player, currency)] = named[0]

    def balance(self, wallet: Wallet) -> int:
        return _available(self.ledger.balance(wallet.account_id))

    # -- calls ----------------------------------------------------------------------------
    def handle(self, provider: str, call: WalletCall, raw: str) -> WalletAnswer:
        (answer,) = self.handle_many([(provider, call, raw)])
        return answer

    def handle_many(self, calls: Sequence[tuple[str, WalletCall, str]]) -> list[WalletAnswer]:
        """Answers to ``(provider, call, raw payload)`` calls, as if handled one by one in order.

        A call waits for a later round if an earlier call of this batch, in this round or
        waiting, is its player's or names one of the same provider transactions; so each
        call sees what every earlier call it could depend on committed. The calls of a
        round share one read of the rollback marks, the ledger's group commits and one
        event-log append: that is what keeps a busy gateway cheap.

        Batches may be handled by several threads at once (a redrive beside the
        gateway's batches). A call also waits while a round of another thread holds one
        of its names, so whatever runs at once shares nothing, and the outcome is that
        of some order of the calls one by one. The player stripes alone let two players'
        calls that name one transaction (a rollback of another player's bet) run at once.
        """
        answers: dict[int, WalletAnswer] = {}
        names = [_names(provider, call) for provider, call, _ in calls]
        waiting = list(range(len(calls)))
        while waiting:
            with self._busy_changed:
                while True:
                    # A call whose names a round of another thread holds waits too.
                    taken: set[str] = set()
                    first: list[int] = []
                    later: list[int] = []
                    for i in waiting:
                        blocked = taken & names[i] or not self._busy.isdisjoint(names[i])
                        (later if blocked else first).append(i)
                        taken |= names[i]
                    if first:
                        break
                    self._busy_changed.wait()
                held = set().union(*(names[i] for i in first))
                self._busy |= held
            try:
                answers.update(zip(first, self._round([calls[i] for i in first]), strict=True))
            finally:
                with self._busy_changed:
                    self._busy -= held
                    self._busy_changed.notify_all()
            waiting = later
        return [answers[i] for i in range(len(calls))]

    def _round(self, calls: Sequence[tuple[str, WalletCall, str]]) -> list[WalletAnswer]:
        """Calls independent of each other (see handle_many), each under its player's lock."""
        stripes = sorted({hash(call.player) % LOCK_STRIPES for _, call, _ in calls})
        with ExitStack() as held:
            for stripe in stripes:
                held.enter_context(self._locks[stripe])
            round_ = [_InFlight(provider, call, raw) for provider, call, raw in calls]
            try:
                self._find_many([(c.call.player, c.call.currency) for c in round_])
            except Exception as exc:  # noqa: BLE001 - each call's own find tries again
                _log_failure(exc, calls=len(round_))
            self._each(round_, self._open)
            live = [c for c in round_ if c.answer is None]
            try:
                marks = self.marks.marked(
                    [f"{c.provider}:{op.tx_id}" for c in live for op in c.call.ops]
                )
            except Exception as exc:  # noqa: BLE001 - each call is answered, see _each
                marks = {}
                self._all_unavailable(live, exc)
            self._each(round_, lambda c: self._start(c, marks))
            self._each(round_, self._apply)
            self._log([c for c in round_ if c.answer is None])
            self._answer([c for c in round_ if c.answer is None])
        return [c.answer for c in round_ if c.answer is not None]

    def _each(self, round_: list[_InFlight], step: Callable[[_InFlight], None]) -> None:
        """``step`` for each call not answered yet. A failure answers that call only, as
        unavailable, so the provider retries it; what it committed before failing is
        found again then (``exists``), and its events are appended."""
        for c in round_:
            if c.answer is None:
                try:
                    step(c)
                except Exception as exc:  # noqa: BLE001 - one call's failure is its own
                    c.answer = self._unavailable(c, exc)

    def _all_unavailable(self, calls: list[_InFlight], exc: Exception) -> None:
        """A step the calls share failed: each is answered unavailable, logged once."""
        _log_failure(exc, calls=len(calls))
        for c in calls:
            c.answer = self._unavailable(c, exc, logged=True)

    def _unavailable(self, c: _InFlight, exc: Exception, *, logged: bool = False) -> WalletAnswer:
        if not logged:
            _log_failure(exc, provider=c.provider)
        w = c.wallet
        return WalletAnswer(
            c.call,
            w.currency if w else c.call.currency,
            0,
            error=WalletError.UNAVAILABLE,
            detail=str(exc),
            operator=w.operator if w else "",
        )

    def _open(self, c: _InFlight) -> None:
        """The call's wallet, and the checks that need nothing of the rest of the round."""
        call = c.call
        wallet = c.wallet = self.find(call.player, call.currency) or self._wallet_of_reference(
            c.provider, call
        )
        if wallet is None:
            known = self.find(call.player)
            error = WalletError.WRONG_CURRENCY if known else WalletError.UNKNOWN_PLAYER
            c.answer = WalletAnswer(call, call.currency, 0, error=error, detail=call.player)
            return
        if call.kind is not CallKind.TRANSACT or not call.ops:
            c.answer = WalletAnswer(
                call, wallet.currency, self.balance(wallet), operator=wallet.operator
            )
            return
        try:
            c.call = call = _in_minor_units(call, wallet.currency)
        except MoneyError as exc:
            c.answer = self._failed(call, wallet, WalletError.BAD_AMOUNT, str(exc))
            return
        for op in call.ops:
            if len(op.tx_id) > TX_ID_MAX or len(op.ref_tx) > TX_ID_MAX:
                c.answer = self._failed(
                    call, wallet, WalletError.REFUSED, "transaction id too long"
                )
                return
        settled = self._settled(c.provider, call)
        if settled is not None:
            c.answer = self._failed(call, wallet, *settled)

    def _start(self, c: _InFlight, marks: dict[str, str]) -> None:
        """The call's transfers planned and handed to the ledger (not waited for)."""
        assert c.wallet is not None
        plan = c.plan = _Plan(c.provider, c.wallet, c.call, marks)
        for op in c.call.ops:
            if op.kind is EventKind.ROLLBACK:
                original = self._original(c.provider, op, plan)
                if original is not None and not original.mine:
                    # Never move one player's money on another's say-so.
                    detail = f"transaction {op.ref_tx} is another player's"
                    c.answer = self._failed(c.call, c.wallet, WalletError.REFUSED, detail)
                    return
                plan.rollback(op, original)
            else:
                plan.move(op)
        if plan.requests:
            c.pending = self.ledger.submit(plan.requests)

    def _apply(self, c: _InFlight) -> None:
        """The ledger's results read back as outcomes; the events they make."""
        assert c.wallet is not None and c.plan is not None
        provider, wallet, call, plan = c.provider, c.wallet, c.call, c.plan
        results = c.pending.result() if c.pending is not None else []
        outcomes = c.outcomes = plan.outcomes(results)
        failures = [o for o in outcomes if not o.ok]
        if failures:
            # In a failed chain the others say "linked_event_failed": name the cause.
            cause = next((o for o in failures if o.detail != _LINKED), failures[0])
            c.answer = self._failed(call, wallet, _ERRORS[cause.status], cause.detail, outcomes)
            return
        now = self.clock.now()
        # A retry must produce the very same events: take the time the ledger first
        # committed when the provider sends none.
        occurred = call.occurred_at or next(
            (r.transfer.occurred_at for r in results if r.transfer is not None),
            plan.first_at or now,
        )
        for o in outcomes:
            if o.status is OpStatus.UNKNOWN_REFERENCE:
                self.marks.mark(f"{provider}:{o.op.ref_tx}", plan.key(o.op), now)
        c.events = [
            self._event(provider, wallet, call, o, plan, c.raw, occurred, now)
            for o in outcomes
            if o.status is not OpStatus.ALREADY_ROLLED_BACK
        ]

    def _log(self, round_: list[_InFlight]) -> None:
        """The round's events in one append; a conflicting one is kept in quarantine."""
        try:
            results = self.log.append([e for c in round_ for e in c.events])
        except Exception as exc:  # noqa: BLE001 - each call is answered, see _each
            self._all_unavailable(round_, exc)
            return
        at = 0
        for c in round_:
            mine = results[at : at + len(c.events)]
            at += len(c.events)
            for event, result in zip(c.events, mine, strict=True):
                if result.outcome is Appended.CONFLICT and not (
                    # A retry of an op that moved no money (a zero win, a rollback that
                    # came first) when the protocol sends no time: our clock dated it, not
                    # the provider, so only that date differs. It is the same event.
                    c.call.occurred_at is None and result.differs_in == "occurred_at"
                ):
                    self.quarantine.put(
                        Refused(
                            source="callback",
                            channel=c.provider,
                            reason=Reason.CONFLICT,
                            detail=f"event {event.key} was logged before with another "
                            f"{result.differs_in}",
                            payload=c.raw,
                            received_at=event.recorded_at,
                            key=event.key,
                        )
                    )

    def _answer(self, round_: list[_InFlight]) -> None:
        """Each call answered with its wallet's committed balance, read in one go."""
        try:
            found = self.ledger.balances([c.wallet.account_id for c in round_ if c.wallet])
        except Exception as exc:  # noqa: BLE001 - each call is answered, see _each
            self._all_unavailable(round_, exc)
            return
        for c in round_:
            assert c.wallet is not None
            c.answer = WalletAnswer(
                c.call,
                c.wallet.currency,
                _available(found.get(c.wallet.account_id)),
                tuple(c.outcomes),
                operator=c.wallet.operator,
            )

    def _wallet_of_reference(self, provider: str, call: WalletCall) -> Wallet | None:
        """For a call that names no currency (Hub88's rollback) from a player with several
        wallets: the wallet that the transaction it rolls back moved, if any did."""
        if call.currency:
            return None
        for op in call.ops:
            for kind in op.ref_kinds if op.ref_tx else ():
                key = idempotency_key(provider, op.ref_tx, kind.value)
                found = self.ledger.get_transfer(f"w:{key}")
                if found is not None:
                    return self.find(call.player, found.currency)
        return None

    def _settled(self, provider: str, call: WalletCall) -> tuple[WalletError, str] | None:
        """Why an op naming the bet it settles (``WalletOp.settles``) cannot be taken, if so.

        Checked before anything moves, so a refused call writes no transfer, event or mark.
        A rollback of an unknown bet is not refused here: it is answered and marked as usual.
        """
        for op in call.ops:
            if not op.settles:
                continue
            bet = idempotency_key(provider, op.settles, EventKind.BET.value)
            if op.kind is EventKind.ROLLBACK:
                win = idempotency_key(provider, op.settles, EventKind.WIN.value)
                if self.ledger.get_transfer(f"w:{win}") is not None:
                    return WalletError.ALREADY_SETTLED, f"bet {op.settles} was won already"
            elif self.ledger.get_transfer(_reversal(bet)) is not None:
                return WalletError.ALREADY_ROLLED_BACK, f"bet {op.settles} was rolled back"
            elif self.ledger.get_transfer(f"w:{bet}") is None:
                return WalletError.UNKNOWN_REFERENCE, f"bet {op.settles} was never applied"
        return None

    def _original(self, provider: str, op: WalletOp, plan: _Plan) -> _Original | None:
        """What a rollback voids, if it was ever applied, and its reversal if it has one."""
        for kind in op.ref_kinds:
            key = idempotency_key(provider, op.ref_tx, kind.value)
            earlier = plan.amounts.get(key)
            if earlier is not None:
                return _Original(key, earlier, None)
            found = self.ledger.get_transfer(f"w:{key}")
            if found is not None:
                reversal = self.ledger.get_transfer(_reversal(key))
                mine = plan.wallet.account_id in (found.debit_account_id, found.credit_account_id)
                return _Original(key, found.amount, reversal, mine)
        return None

    def _failed(
        self,
        call: WalletCall,
        wallet: Wallet,
        error: WalletError,
        detail: str,
        outcomes: Sequence[OpOutcome] = (),
    ) -> WalletAnswer:
        return WalletAnswer(
            call,
            wallet.currency,
            self.balance(wallet),
            tuple(outcomes),
            error=error,
            detail=detail,
            operator=wallet.operator,
        )

    def _event(
        self,
        provider: str,
        wallet: Wallet,
        call: WalletCall,
        outcome: OpOutcome,
        plan: _Plan,
        raw: str,
        occurred: datetime,
        now: datetime,
    ) -> Event:
        op = outcome.op
        ref = ""
        amount = op.amount
        if op.kind is EventKind.ROLLBACK:
            ref, amount = plan.voids.get(
                op.tx_id, (idempotency_key(provider, op.ref_tx, op.ref_kinds[0].value), op.amount)
            )
        return Event(
            provider=provider,
            provider_tx_id=op.tx_id,
            kind=op.kind,
            round_id=op.round_id,
            operator=wallet.operator,
            player=wallet.player,
            game=call.game,
            game_type=call.game_type or self.game_type(provider, call.game),
            amount=amount,
            currency=wallet.currency,
            occurred_at=occurred,
            recorded_at=now,
            channel=call.channel,
            region=wallet.region,
            agent=wallet.agent,
            ref=ref,
            raw=raw,
        )


_LINKED = ResultCode.LINKED_EVENT_FAILED.slug
_ERRORS = {
    OpStatus.INSUFFICIENT_FUNDS: WalletError.INSUFFICIENT_FUNDS,
    OpStatus.CONFLICT: WalletError.CONFLICT,
    OpStatus.REFUSED: WalletError.REFUSED,
}


def _in_minor_units(call: WalletCall, currency: str) -> WalletCall:
    """The call with every decimal amount converted exactly in the wallet's currency."""
    if not any(op.decimal_amount for op in call.ops):
        return call
    ops = tuple(
        replace(
            op,
            amount=parse_amount(
                op.decimal_amount, currency, allow_negative=op.kind is EventKind.ADJUSTMENT
            ),
            decimal_amount="",
        )
        if op.decimal_amount
        else op
        for op in call.ops
    )
    return replace(call, ops=ops)


def _available(balance: Balance | None) -> int:
    """What a wallet can spend: 0 for an account the ledger does not have."""
    return 0 if balance is None else balance.available_credit


def _reversal(original_key: str) -> str:
    # Named after the original, so a second rollback of it can never void it twice.
    return f"w:{original_key}:rollback"


def _log_failure(exc: Exception, **context: object) -> None:
    if isinstance(exc, RetryableError):
        log.warning("wallet_call_failed", error=str(exc), **context)
    else:
        log.exception("wallet_call_failed", error=str(exc), **context)


def _names(provider: str, call: WalletCall) -> set[str]:
    """What a call's outcome may depend on: its player and the transactions it names."""
    names = {f"player:{call.player}"}
    for op in call.ops:
        names.update(f"{provider}:{tx}" for tx in (op.tx_id, op.ref_tx, op.settles) if tx)
    return names


@dataclass(slots=True)
class _InFlight:
    """One call on its way through a round of ``WalletService.handle_many``."""

    provider: str
    call: WalletCall
    raw: str
    wallet: Wallet | None = None
    plan: _Plan | None = None
    pending: Future[list[TransferResult]] | None = None  # the ledger's answer to come
    outcomes: list[OpOutcome] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    answer: WalletAnswer | None = None  # set once the call is answered (or failed)


@dataclass(frozen=True, slots=True)
class _Original:
    key: str
    amount: int
    reversal: Transfer | None  # the transfer that already voided it, if any
    mine: bool = True  # it moved the calling player's wallet


class _Plan:
    """The ledger requests of one call, and how to read their results back as outcomes."""

    def __init__(
        self, provider: str, wallet: Wallet, call: WalletCall, marks: dict[str, str]
    ) -> None:
        self.provider = provider
        self.wallet = wallet
        self.call = call
        self.marks = marks
        self.requests: list[TransferRequest] = []
        # For each op: the index of its request (or None) and its fixed status if none.
        self.slots: list[tuple[WalletOp, int | None, OpStatus]] = []
        self.amounts: dict[str, int] = {}  # keys applied earlier in this call
        self.voids: dict[str, tuple[str, int]] = {}  # rollback tx -> (original key, amount)
        # When a repeated rollback was first committed: its retry makes the same event.
        self.first_at: datetime | None = None

    def key(self, op: WalletOp) -> str:
        return idempotency_key(self.provider, op.tx_id, op.kind.value)

    def _request(self, op: WalletOp, request: TransferRequest) -> None:
        if self.requests:
            self.requests[-1] = replace(self.requests[-1], linked=True)
        self.slots.append((op, len(self.requests), OpStatus.OK))
        self.requests.append(request)

    def move(self, op: WalletOp) -> None:
        if f"{self.provider}:{op.tx_id}" in self.marks:
            self.slots.append((op, None, OpStatus.CANCELLED))
            return
        if op.amount == 0 or op.kind is EventKind.ROUND_END:
            self.slots.append((op, None, OpStatus.OK))
            return
        w = self.wallet
        wallet, clearing = w.account_id, clearing_account(w.operator, w.currency)
        crediting = op.kind in _CREDITING and op.amount > 0
        key = self.key(op)
        self.amounts[key] = abs(op.amount)
        self._request(
            op,
            TransferRequest(
                id=f"w:{key}",
                debit_account_id=clearing if crediting else wallet,
                credit_account_id=wallet if crediting else clearing,
                amount=abs(op.amount),
                currency=w.currency,
                code=f"{WALLET_CODE}_{op.kind.value}",
                occurred_at=self.call.occurred_at,
                event_ref=key,
            ),
        )

    def rollback(self, op: WalletOp, original: _Original | None) -> None:
        if original is None:
            self.slots.append((op, None, OpStatus.UNKNOWN_REFERENCE))
            return
        original_key, amount = original.key, original.amount
        self.voids[op.tx_id] = (original_key, amount)
        if original.reversal is not None:
            # Voided before: by this very rollback (a retry) or by another one.
            again = original.reversal.event_ref == self.key(op)
            if again:
                self.first_at = original.reversal.occurred_at
            self.slots.append(
                (op, None, OpStatus.REPEATED if again else OpStatus.ALREADY_ROLLED_BACK)
            )
            return
        w = self.wallet
        wallet, clearing = w.account_id, clearing_account(w.operator, w.currency)
        was_credit = original_key.rsplit(":", 1)[1] in {k.value for k in _CREDITING}
        self._request(
            op,
            TransferRequest(
                id=_reversal(original_key),
                debit_account_id=wallet if was_credit else clearing,
                credit_account_id=clearing if was_credit else wallet,
                amount=amount,
                currency=w.currency,
                code=f"{WALLET_CODE}_rollback",
                event_ref=self.key(op),
            ),
        )

    def outcomes(self, results: Sequence[TransferResult]) -> list[OpOutcome]:
        out: list[OpOutcome] = []
        for op, index, fixed in self.slots:
            if index is None:
                out.append(OpOutcome(op, fixed))
                continue
            result = results[index]
            at = result.transfer.recorded_at if result.transfer else None
            out.append(OpOutcome(op, _status(op, result.code), result.id, at, result.code.slug))
        return out


def _status(op: WalletOp, code: ResultCode) -> OpStatus:
    if code is ResultCode.OK:
        return OpStatus.OK
    if code is ResultCode.EXISTS:
        return OpStatus.REPEATED
    if code is ResultCode.EXCEEDS_CREDITS:
        return OpStatus.INSUFFICIENT_FUNDS
    if code.name.startswith("EXISTS_WITH_DIFFERENT"):
        return OpStatus.CONFLICT
    return OpStatus.REFUSED
