"""The ledger against a model of it: a Hypothesis state machine over every store.

The model below is a few dicts and a log of balance movements, written from the
ledger's documented rules (docs/concepts/ledger.md), sharing no code with the engine
or ``ledger.history``. Every step submits random batches (good and bad requests,
two-phase follow-ups, linked chains, reused ids) to a real store and to the model,
and the two must agree on every result code and every figure.

Properties checked after every step:
- every currency nets to zero over all accounts (pending and posted);
- each account's balance equals the sum of its listed transfers;
- each balance equals the model's, and every rejection is kept with its code;
and by rules:
- replaying every accepted request again answers EXISTS and changes nothing;
- the balance at a past instant equals the sum of the movements recorded up to it.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tally.ledger.model import (
    Account,
    AccountFlags,
    OwnerKind,
    TransferKind,
    TransferRequest,
)
from tests.conftest import PG_DSN, require_postgres

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
SINGLE, PENDING, POST, VOID = (
    TransferKind.SINGLE,
    TransferKind.PENDING,
    TransferKind.POST,
    TransferKind.VOID,
)

# -- the model ---------------------------------------------------------------------------
# Result codes by name, so the model does not lean on the engine's enum for its logic.
OK, EXISTS = "ok", "exists"
CURRENCY = {"bank": "EUR", "w1": "EUR", "w2": "EUR", "line": "EUR", "y1": "JPY", "y2": "JPY"}
NO_DEBIT_PAST_CREDIT = {"w1", "w2"}  # wallets
NO_CREDIT_PAST_DEBIT = {"line"}  # a credit line
ACCOUNT_IDS = sorted(CURRENCY)


@dataclass
class Rec:
    """What the model remembers of a committed transfer."""

    kind: str
    dr: str
    cr: str
    amount: int
    currency: str
    code: str
    pending_id: str
    timeout_s: int
    recorded_at: datetime
    status: str | None = None  # pending transfers only
    resolved_at: datetime | None = None


@dataclass
class Model:
    # account -> [debits_pending, debits_posted, credits_pending, credits_posted]
    balances: dict[str, list[int]] = field(
        default_factory=lambda: {a: [0, 0, 0, 0] for a in CURRENCY}
    )
    transfers: dict[str, Rec] = field(default_factory=dict)
    # (time, account, figure index, delta): the history every past balance is summed from.
    moves: list[tuple[datetime, str, int, int]] = field(default_factory=list)
    rejections: list[tuple[str, str]] = field(default_factory=list)
    accepted: list[TransferRequest] = field(default_factory=list)

    def move(self, now: datetime, account: str, figure: int, delta: int) -> None:
        self.balances[account][figure] += delta
        self.moves.append((now, account, figure, delta))

    def balance_at(self, account: str, at: datetime) -> list[int]:
        out = [0, 0, 0, 0]
        for when, acc, figure, delta in self.moves:
            if acc == account and when <= at:
                out[figure] += delta
        return out

    # -- one batch: expire what is due, then each submission in turn ---------------------
    def apply(self, submissions: list[list[TransferRequest]], now: datetime) -> list[list[str]]:
        for rec in self.transfers.values():
            due = rec.timeout_s and rec.recorded_at + timedelta(seconds=rec.timeout_s) <= now
            if rec.status == "pending" and due:
                self.release(rec, now, "expired")
        results = []
        for requests in submissions:
            codes = self.submission(requests, now)
            for request, code in zip(requests, codes, strict=True):
                if code not in (OK, EXISTS):
                    self.rejections.append((request.id, code))
                elif code == OK:
                    self.accepted.append(request)
            results.append(codes)
        return results

    def release(self, rec: Rec, now: datetime, status: str) -> None:
        self.move(now, rec.dr, 0, -rec.amount)
        self.move(now, rec.cr, 2, -rec.amount)
        rec.status = status
        rec.resolved_at = now

    def submission(self, requests: list[TransferRequest], now: datetime) -> list[str]:
        codes: list[str] = []
        i = 0
        while i < len(requests):
            j = i
            while requests[j].linked and j < len(requests) - 1:
                j += 1
            group = requests[i : j + 1]
            if len(group) == 1 and not group[0].linked:
                codes.append(self.one(group[0], now))
            else:
                codes.extend(self.chain(group, now))
            i = j + 1
        return codes

    def chain(self, group: list[TransferRequest], now: datetime) -> list[str]:
        n = len(group)
        if group[-1].linked:  # nothing follows the last link
            return ["linked_event_failed"] * (n - 1) + ["linked_event_chain_open"]
        saved = (copy.deepcopy(self.balances), copy.deepcopy(self.transfers), len(self.moves))
        replay = False
        for k, request in enumerate(group):
            code = self.one(request, now)
            if k == 0:
                replay = code == EXISTS
            if code != (EXISTS if replay else OK):
                self.balances, self.transfers = saved[0], saved[1]
                del self.moves[saved[2] :]
                out = ["linked_event_failed"] * n
                # The failing link keeps its own code unless that would claim an effect
                # the ledger does not hold (OK undone, or EXISTS of an id the chain made).
                if code not in (OK, EXISTS) or request.id in self.transfers:
                    out[k] = code
                return out
        return [EXISTS if replay else OK] * n

    def one(self, r: TransferRequest, now: datetime) -> str:
        followup = r.kind in (POST, VOID)
        if r.amount is not None and r.amount <= 0:
            return "amount_must_be_positive"
        if not followup and r.debit_account_id == r.credit_account_id:
            return "accounts_must_be_different"
        if r.currency == "XXX":
            return "currency_unknown"
        if followup and r.pending_id == r.id:
            return "pending_id_must_be_different"
        if r.id in self.transfers:
            return self.same_as(r, self.transfers[r.id])
        if not followup:
            return self.new(r, now)
        return self.follow(r, now)

    @staticmethod
    def same_as(r: TransferRequest, e: Rec) -> str:
        checks = [
            ("kind", r.kind.value != e.kind),
            ("debit_account_id", bool(r.debit_account_id) and r.debit_account_id != e.dr),
            ("credit_account_id", bool(r.credit_account_id) and r.credit_account_id != e.cr),
            ("amount", r.amount is not None and r.amount != e.amount),
            ("currency", bool(r.currency) and r.currency != e.currency),
            ("code", bool(r.code) and r.code != e.code),
            ("pending_id", r.pending_id != e.pending_id),
            ("timeout", r.timeout_s != e.timeout_s),
        ]
        for name, differs in checks:
            if differs:
                return f"exists_with_different_{name}"
        return EXISTS

    def new(self, r: TransferRequest, now: datetime) -> str:
        dr, cr, amount = r.debit_account_id, r.credit_account_id, r.amount
        assert amount is not None
        if dr not in CURRENCY:
            return "debit_account_not_found"
        if cr not in CURRENCY:
            return "credit_account_not_found"
        if CURRENCY[dr] != CURRENCY[cr]:
            return "accounts_must_have_the_same_currency"
        if r.currency != CURRENCY[dr]:
            return "transfer_currency_must_match_accounts"
        d, c = self.balances[dr], self.balances[cr]
        if dr in NO_DEBIT_PAST_CREDIT and d[0] + d[1] + amount > d[3]:
            return "exceeds_credits"
        if cr in NO_CREDIT_PAST_DEBIT and c[2] + c[3] + amount > c[1]:
            return "exceeds_debits"
        pend = r.kind is PENDING
        self.move(now, dr, 0 if pend else 1, amount)
        self.move(now, cr, 2 if pend else 3, amount)
        self.transfers[r.id] = Rec(
            r.kind.value,
            dr,
            cr,
            amount,
            r.currency,
            r.code,
            "",
            r.timeout_s,
            now,
            "pending" if pend else None,
        )
        return OK

    def follow(self, r: TransferRequest, now: datetime) -> str:
        p = self.transfers.get(r.pending_id)
        if p is None:
            return "pending_transfer_not_found"
        if p.kind != "pending":
            return "pending_transfer_not_pending"
        if r.amount is not None and r.amount > p.amount:
            return "exceeds_pending_transfer_amount"
        if p.status != "pending":
            return {
                "posted": "pending_transfer_already_posted",
                "voided": "pending_transfer_already_voided",
                "expired": "pending_transfer_expired",
            }[p.status or ""]
        amount = p.amount if r.amount is None else r.amount
        self.release(p, now, "posted" if r.kind is POST else "voided")
        if r.kind is POST:
            self.move(now, p.dr, 1, amount)
            self.move(now, p.cr, 3, amount)
        self.transfers[r.id] = Rec(
            r.kind.value, p.dr, p.cr, amount, p.currency, r.code or p.code, r.pending_id, 0, now
        )
        return OK


# -- strategies ----------------------------------------------------------------------------
GROUPS = {"EUR": ["bank", "w1", "w2", "line"], "JPY": ["y1", "y2"]}
# One fault at a time, drawn now and then; most requests are meant to be good.
FAULTS = ["ghost_debit", "ghost_credit", "same", "cross", "other_currency", "xxx", "zero", "neg"]


@st.composite
def new_transfer(draw: st.DrawFn, tid: str) -> TransferRequest:
    kind = draw(st.sampled_from([SINGLE, SINGLE, PENDING]))
    currency = draw(st.sampled_from(["EUR", "EUR", "JPY"]))
    dr, cr = draw(st.permutations(GROUPS[currency]))[:2]
    amount = draw(st.integers(min_value=1, max_value=120))
    fault = draw(st.sampled_from([None] * 12 + FAULTS))
    if fault == "ghost_debit":
        dr = "ghost"
    elif fault == "ghost_credit":
        cr = "ghost"
    elif fault == "same":
        cr = dr
    elif fault == "cross":
        cr = "y1" if currency == "EUR" else "bank"
    elif fault == "other_currency":
        currency = "JPY" if currency == "EUR" else "EUR"
    elif fault == "xxx":
        currency = "XXX"
    elif fault == "zero":
        amount = 0
    elif fault == "neg":
        amount = -amount
    timeout = draw(st.sampled_from([0, 2, 10, 60])) if kind is PENDING else 0
    code = draw(st.sampled_from(["bet", "bet", "bet", "win"]))
    return TransferRequest(tid, dr, cr, amount, currency, code, kind, timeout_s=timeout)


@st.composite
def followup(draw: st.DrawFn, tid: str, pending_ids: list[str], ids: list[str]) -> TransferRequest:
    kind = draw(st.sampled_from([POST, POST, VOID]))
    pool = draw(st.sampled_from(["open", "open", "open", "any"]))
    targets = pending_ids if pool == "open" and pending_ids else ids or [tid]
    pid = draw(st.sampled_from(targets))
    amount = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=120)))
    return TransferRequest(tid, amount=amount if kind is POST else None, kind=kind, pending_id=pid)


def as_chain(requests: list[TransferRequest], open_: bool) -> list[TransferRequest]:
    last = len(requests) - 1
    return [_linked(r, i < last or open_) for i, r in enumerate(requests)]


def _linked(r: TransferRequest, linked: bool) -> TransferRequest:
    fields = {f: getattr(r, f) for f in TransferRequest.__slots__}
    return TransferRequest(**{**fields, "linked": linked})


# -- the machine ---------------------------------------------------------------------------
StoreFactory = Callable[[], tuple[Any, Callable[[], None]]]


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, factory: StoreFactory) -> None:
        super().__init__()
        self.store, self._cleanup = factory()
        self.model = Model()
        self.now = T0
        self.times: list[datetime] = [T0]
        self.fresh = 0
        self.last: TransferRequest | None = None

    def teardown(self) -> None:
        self._cleanup()

    def run(self, submissions: list[list[TransferRequest]]) -> None:
        got = self.store.apply(submissions, self.now)
        expected = self.model.apply(submissions, self.now)
        assert [[r.code.slug for r in rs] for rs in got] == expected, submissions
        for rs, reqs in zip(got, submissions, strict=True):
            assert [r.id for r in rs] == [q.id for q in reqs]
        if self.times[-1] != self.now:
            self.times.append(self.now)

    @initialize()
    def open_accounts(self) -> None:
        flags = {a: AccountFlags.NONE for a in CURRENCY}
        flags.update({a: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS for a in NO_DEBIT_PAST_CREDIT})
        flags.update({a: AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS for a in NO_CREDIT_PAST_DEBIT})
        accounts = [
            Account(a, OwnerKind.PLATFORM, "tally", CURRENCY[a], "test", flags[a])
            for a in ACCOUNT_IDS
        ]
        assert all(r.code.ok for r in self.store.create_accounts(accounts, T0))
        fund = [
            TransferRequest("fund-w1", "bank", "w1", 300, "EUR", "fund"),
            TransferRequest("fund-w2", "bank", "w2", 100, "EUR", "fund"),
            TransferRequest("draw-line", "line", "bank", 150, "EUR", "fund"),
            TransferRequest("fund-y2", "y1", "y2", 5_000, "JPY", "fund"),
        ]
        self.run([fund])

    @rule(data=st.data(), count=st.integers(min_value=1, max_value=3))
    def submit(self, data: st.DataObject, count: int) -> None:
        """One batch of 1-3 submissions; each a few requests, some as linked chains."""
        submissions = []
        for _ in range(count):
            requests = [self.draw_request(data) for _ in range(data.draw(st.integers(1, 3)))]
            shape = data.draw(st.sampled_from(["plain", "plain", "chain", "chain", "open"]))
            if shape != "plain" and (len(requests) > 1 or shape == "open"):
                requests = as_chain(requests, shape == "open")
            submissions.append(requests)
        self.run(submissions)

    @rule(data=st.data())
    def submit_one(self, data: st.DataObject) -> None:
        """A single submission (the most common traffic; also weights the rules)."""
        self.run([[self.draw_request(data) for _ in range(data.draw(st.integers(1, 3)))]])

    def draw_request(self, data: st.DataObject) -> TransferRequest:
        known = sorted(self.model.transfers)
        choice = data.draw(st.integers(0, 19))
        if self.last is not None and choice == 5:
            return self.last  # the same request again, maybe in the same submission
        if known and choice < 4:
            tid = data.draw(st.sampled_from(known))  # a reused id, same content or not
        elif self.fresh and choice == 4:
            tid = f"t{self.fresh}"  # the id just drawn, maybe in the same submission
        else:
            self.fresh += 1
            tid = f"t{self.fresh}"
        open_ = sorted(i for i, t in self.model.transfers.items() if t.status == "pending")
        if data.draw(st.integers(0, 9)) < 3:
            self.last = data.draw(followup(tid, open_, known))
        else:
            self.last = data.draw(new_transfer(tid))
        return self.last

    @rule(seconds=st.sampled_from([1, 2, 5, 11, 61]), apply_now=st.booleans())
    def let_time_pass(self, seconds: int, apply_now: bool) -> None:
        self.now += timedelta(seconds=seconds)
        if apply_now:
            self.run([[]])  # an empty batch still expires what is due

    @precondition(lambda self: bool(self.model.accepted))
    @rule()
    def replay_everything_accepted(self) -> None:
        self.run([[]])  # expire what is due first, so only the replay is measured
        before = self._balances()
        rejections = len(self.model.rejections)
        replay = [[_linked(r, False)] for r in self.model.accepted]
        got = self.store.apply(replay, self.now)
        assert [r.code.slug for [r] in got] == [EXISTS] * len(replay)
        assert self._balances() == before
        assert len(self._rejections()) == rejections
        self.model.apply(replay, self.now)

    @rule(data=st.data())
    def balance_in_the_past(self, data: st.DataObject) -> None:
        at = data.draw(st.sampled_from(self.times))
        at += data.draw(st.sampled_from([timedelta(0), -timedelta(microseconds=1)]))
        for account in ACCOUNT_IDS:
            b = self.store.balance(account, at)
            got = [b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted]
            assert got == self.model.balance_at(account, at), (account, at)

    # -- invariants ----------------------------------------------------------------------
    def _balances(self) -> dict[str, list[int]]:
        out = {}
        for a in ACCOUNT_IDS:
            b = self.store.balance(a)
            out[a] = [b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted]
        return out

    def _rejections(self) -> list[tuple[str, str]]:
        out, cursor = [], None
        while True:
            page = self.store.rejections(cursor=cursor, limit=50)
            out.extend((r.transfer_id, r.code.slug) for r in page.items)
            if page.next_cursor is None:
                return out
            cursor = page.next_cursor

    @invariant()
    def balances_match_the_model_and_rejections_are_kept(self) -> None:
        assert self._balances() == self.model.balances
        assert self._rejections() == self.model.rejections

    @invariant()
    def every_currency_nets_to_zero(self) -> None:
        totals = self.store.totals_by_currency()
        for currency, total in totals.items():
            assert total.debits_posted == total.credits_posted, currency
            assert total.debits_pending == total.credits_pending, currency
        # And independently of the store's own sums:
        for currency in set(CURRENCY.values()):
            figures = [self.model.balances[a] for a in CURRENCY if CURRENCY[a] == currency]
            assert sum(f[1] for f in figures) == sum(f[3] for f in figures)
            assert sum(f[0] for f in figures) == sum(f[2] for f in figures)

    @invariant()
    def balances_equal_the_sum_of_their_transfers(self) -> None:
        for a in ACCOUNT_IDS:
            sums = [0, 0, 0, 0]
            cursor = None
            while True:
                page = self.store.account_transfers(a, cursor=cursor, limit=7)
                for t in page.items:
                    side = 0 if t.debit_account_id == a else 2
                    if t.kind in (SINGLE, POST):
                        sums[side + 1] += t.amount
                    elif t.kind is PENDING and t.status.value == "pending":
                        sums[side] += t.amount
                    rec = self.model.transfers[t.id]
                    assert (t.kind.value, t.amount, t.recorded_at) == (
                        rec.kind,
                        rec.amount,
                        rec.recorded_at,
                    )
                    assert (t.status.value if t.status else None) == rec.status
                    assert t.resolved_at == rec.resolved_at
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            assert sums == self.model.balances[a], a


# -- stores --------------------------------------------------------------------------------
def memory_store() -> tuple[Any, Callable[[], None]]:
    from tally.adapters.memory.ledger import MemoryLedgerStore

    return MemoryLedgerStore(), lambda: None


def sqlite_store(pipelined: bool = False) -> tuple[Any, Callable[[], None]]:
    from tally.adapters.sqlite.ledger import SqliteLedgerStore
    from tally.kernel.limits import LedgerLimits
    from tests.conftest import Pipelined

    folder = tempfile.mkdtemp(prefix="tally-stateful-")
    # Its history index takes transfers in every third one: history is read both through
    # it and from the tail it has not taken in.
    kind = Pipelined if pipelined else SqliteLedgerStore
    store = kind(f"{folder}/ledger.sqlite", LedgerLimits(history_index_lag=3), synchronous="OFF")

    def cleanup() -> None:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)

    return store, cleanup


def postgres_store(pipelined: bool = False) -> tuple[Any, Callable[[], None]]:
    import psycopg

    from tally.adapters.postgres.ledger import PostgresLedgerStore
    from tests.conftest import PipelinedPostgres

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    kind = PipelinedPostgres if pipelined else PostgresLedgerStore
    store = kind(PG_DSN, schema=schema)

    def cleanup() -> None:
        store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")

    return store, cleanup


@pytest.mark.parametrize(
    ("factory", "examples", "steps"),
    [
        pytest.param(memory_store, 200, 40, id="memory"),
        pytest.param(sqlite_store, 100, 30, id="sqlite"),
        # Decided, then committed, as the ledger writer drives the stores (ADR 0015, 0016).
        pytest.param(partial(sqlite_store, pipelined=True), 100, 30, id="sqlite-pipelined"),
        pytest.param(postgres_store, 25, 25, id="postgres"),
        pytest.param(partial(postgres_store, pipelined=True), 25, 25, id="postgres-pipelined"),
    ],
)
def test_every_store_behaves_like_the_model_of_the_ledger(
    factory: StoreFactory, examples: int, steps: int
) -> None:
    if getattr(factory, "func", factory) is postgres_store:
        require_postgres()
    run_state_machine_as_test(
        lambda: LedgerMachine(factory),
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
