"""Two threads hand the wallet batches at once (the gateway's batches and a redrive): a
call never runs beside another that names its player or one of its transactions, so the
outcome is that of the calls taken one after the other."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tally.events.model import EventKind
from tally.kernel.clock import FixedClock
from tally.wallet.model import CallKind, WalletAnswer, WalletCall, WalletOp
from tests.property.test_wallet_batches import FUNDS, PLAYERS, T0, P, _seen, _state
from tests.support.providers import GatewayWorld, gateway_world

BET = WalletCall(CallKind.TRANSACT, "p1", "EUR", ops=(WalletOp(EventKind.BET, "t1", 400),))
# Another player's rollback of that bet: refused after it, marked (and the bet then
# undone) before it. Run beside it, it would be neither.
ROLLBACK = WalletCall(
    CallKind.TRANSACT,
    "p2",
    "EUR",
    ops=(WalletOp(EventKind.ROLLBACK, "t1-rb", 0, ref_tx="t1", ref_kinds=(EventKind.BET,)),),
)
OTHER = WalletCall(CallKind.TRANSACT, "p3", "EUR", ops=(WalletOp(EventKind.BET, "t9", 100),))


def _world(directory: str) -> Any:
    return gateway_world(Path(directory), FixedClock(T0), {}, ["softswiss"])


def _open(w: GatewayWorld) -> None:
    for player in PLAYERS:
        w.open_player(player, "EUR", FUNDS)


def _serial(calls: Sequence[WalletCall]) -> tuple[list[tuple[object, ...]], tuple[object, ...]]:
    with tempfile.TemporaryDirectory() as directory, _world(directory) as w:
        _open(w)
        answers = [w.wallet.handle(P, c, "{}") for c in calls]
        return [_seen(a) for a in answers], _state(w)


def test_a_batch_waits_for_a_round_that_names_its_transactions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with tempfile.TemporaryDirectory() as directory, _world(directory) as w:
        _open(w)
        marked = w.wallet.marks.marked
        first_in = threading.Event()
        release = threading.Event()
        rounds: list[str] = []

        def marked_holding_the_first(keys: Any) -> Any:
            rounds.append(threading.current_thread().name)
            if threading.current_thread().name == "first":
                first_in.set()
                assert release.wait(10)
            return marked(keys)

        monkeypatch.setattr(w.wallet.marks, "marked", marked_holding_the_first)
        answers: dict[str, list[WalletAnswer]] = {}

        def run(name: str, calls: list[WalletCall]) -> None:
            answers[name] = w.wallet.handle_many([(P, c, "{}") for c in calls])

        first = threading.Thread(target=run, args=("first", [BET]), name="first")
        second = threading.Thread(target=run, args=("second", [ROLLBACK, OTHER]), name="second")
        first.start()
        assert first_in.wait(5)
        second.start()
        # The second batch's call of p3 names nothing of the first: its round goes on.
        # Its rollback names t1: it waits for the first round to end.
        deadline = threading.Event()
        while rounds.count("second") < 1 and not deadline.wait(0.01):
            pass
        deadline.wait(0.2)
        assert rounds == ["first", "second"]
        release.set()
        first.join(10)
        second.join(10)
        assert rounds == ["first", "second", "second"]
        seen, state = _serial([BET, OTHER, ROLLBACK])
        got = [_seen(a) for a in (*answers["first"], answers["second"][1], answers["second"][0])]
        assert got == seen
        assert _state(w) == state
