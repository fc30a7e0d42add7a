"""Wallet calls handled in batches answer and move exactly as if handled one by one.

The gateway hands the wallet whatever callbacks arrived together; ``handle_many`` runs
them in rounds that share commits. Two real embedded wallets get the same calls, one
batched (in random chunks) and one call at a time; their answers, balances, event logs
and quarantines must be the same.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.events.model import EventKind
from tally.kernel.clock import FixedClock
from tally.ledger.model import TransferRequest, TransferResult
from tally.wallet.model import CallKind, WalletAnswer, WalletCall, WalletError, WalletOp
from tests.support.providers import GatewayWorld, gateway_world

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
P = "acme"
PLAYERS = ("p1", "p2", "p3")
FUNDS = 1_000


@st.composite
def op(draw: st.DrawFn) -> WalletOp:
    # Few transaction ids, shared by all players, so repeats, conflicts, rollbacks of bets
    # not seen yet and rollbacks of another player's bet all happen.
    tx = f"t{draw(st.integers(0, 5))}"
    kind = draw(st.sampled_from([EventKind.BET, EventKind.WIN, EventKind.ROLLBACK]))
    if kind is EventKind.ROLLBACK:
        ref = f"t{draw(st.integers(0, 5))}"
        return WalletOp(kind, f"{tx}-rb", 0, ref_tx=ref, ref_kinds=(EventKind.BET,))
    return WalletOp(kind, tx, draw(st.sampled_from([0, 100, 400, 700])), round_id="r1")


@st.composite
def wallet_call(draw: st.DrawFn) -> WalletCall:
    player = draw(st.sampled_from(PLAYERS))
    ops = draw(st.lists(op(), min_size=1, max_size=2))
    return WalletCall(CallKind.TRANSACT, player, "EUR", game="g1", ops=tuple(ops))


def _seen(answer: WalletAnswer) -> tuple[object, ...]:
    return (
        answer.error,
        answer.balance,
        tuple((o.op.tx_id, o.status, o.detail) for o in answer.outcomes),
    )


def _state(w: GatewayWorld) -> tuple[object, ...]:
    events = sorted((e.key, e.amount, e.ref) for e in w.events())
    return tuple(w.balance(p) for p in PLAYERS), events, sorted(w.kept())


def _run(calls: Sequence[WalletCall], chunks: Sequence[int]) -> tuple[object, ...]:
    with (
        tempfile.TemporaryDirectory() as one,
        tempfile.TemporaryDirectory() as many,
        gateway_world(Path(one), FixedClock(T0), {}, ["softswiss"]) as serial,
        gateway_world(Path(many), FixedClock(T0), {}, ["softswiss"]) as batched,
    ):
        for w in (serial, batched):
            for player in PLAYERS:
                w.open_player(player, "EUR", FUNDS)
        alone = [serial.wallet.handle(P, c, "{}") for c in calls]
        together: list[WalletAnswer] = []
        at = 0
        for size in [*chunks, len(calls)]:
            part = calls[at : at + size]
            together += batched.wallet.handle_many([(P, c, "{}") for c in part])
            at += size
        return (
            [_seen(a) for a in alone],
            [_seen(a) for a in together],
            _state(serial),
            _state(batched),
        )


@settings(max_examples=60, deadline=None)
@given(
    calls=st.lists(wallet_call(), min_size=1, max_size=14),
    chunks=st.lists(st.integers(1, 8), max_size=4),
)
def test_batched_calls_answer_and_move_as_calls_one_by_one(
    calls: list[WalletCall], chunks: list[int]
) -> None:
    alone, together, serial, batched = _run(calls, chunks)
    assert together == alone
    assert batched == serial


def test_a_players_calls_in_one_batch_each_see_the_one_before() -> None:
    """Bet, its rollback and a bet beyond the funds, all in one batch: taken in order."""
    calls = [
        WalletCall(CallKind.TRANSACT, "p1", "EUR", ops=(WalletOp(EventKind.BET, "b1", 600),)),
        WalletCall(
            CallKind.TRANSACT,
            "p1",
            "EUR",
            ops=(WalletOp(EventKind.ROLLBACK, "rb1", 0, ref_tx="b1", ref_kinds=(EventKind.BET,)),),
        ),
        WalletCall(CallKind.TRANSACT, "p1", "EUR", ops=(WalletOp(EventKind.BET, "b2", 900),)),
        WalletCall(CallKind.TRANSACT, "p1", "EUR", ops=(WalletOp(EventKind.BET, "b3", 200),)),
    ]
    _, together, _, (balances, _, _) = _run(calls, [len(calls)])
    assert [a[1] for a in together] == [400, 1_000, 100, 100]
    assert [a[0] for a in together] == [None, None, None, WalletError.INSUFFICIENT_FUNDS]
    assert balances[0] == 100


def test_one_calls_failure_answers_that_call_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call whose ledger submission fails (here not even transiently) is answered as
    unavailable; the other calls of its round go through as if it were not there."""
    calls = [
        WalletCall(CallKind.TRANSACT, p, "EUR", ops=(WalletOp(EventKind.BET, f"b-{p}", 100),))
        for p in PLAYERS
    ]
    with (
        tempfile.TemporaryDirectory() as directory,
        gateway_world(Path(directory), FixedClock(T0), {}, ["softswiss"]) as w,
    ):
        for player in PLAYERS:
            w.open_player(player, "EUR", FUNDS)
        submit = w.wallet.ledger.submit

        def failing_for_p2(requests: list[TransferRequest]) -> Future[list[TransferResult]]:
            if "p2" in requests[0].debit_account_id:
                raise ValueError("a defect in the ledger")
            return submit(requests)

        monkeypatch.setattr(w.wallet.ledger, "submit", failing_for_p2)
        answers = w.wallet.handle_many([(P, c, "{}") for c in calls])
        assert [a.error for a in answers] == [None, WalletError.UNAVAILABLE, None]
        assert [w.balance(p) for p in PLAYERS] == [FUNDS - 100, FUNDS, FUNDS - 100]
        assert sorted(e.key for e in w.events()) == ["acme:b-p1:bet", "acme:b-p3:bet"]
