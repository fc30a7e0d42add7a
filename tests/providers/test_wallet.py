"""Wallet mode, protocol-neutral: what the ledger and the event log hold after each call."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tally.events.model import EventKind
from tally.kernel.clock import FixedClock
from tally.wallet.model import (
    CallKind,
    OpStatus,
    WalletCall,
    WalletError,
    WalletOp,
    clearing_account,
)
from tests.support.providers import GatewayWorld, gateway_world

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
P = "acme"


def world(tmp_path: Path) -> AbstractContextManager[GatewayWorld]:
    return gateway_world(tmp_path, FixedClock(T0), {}, ["softswiss"])


def call(*ops: WalletOp, player: str = "p1", currency: str = "EUR") -> WalletCall:
    return WalletCall(CallKind.TRANSACT, player, currency, game="g1", ops=ops)


def bet(tx: str, amount: int, round_id: str = "r1") -> WalletOp:
    return WalletOp(EventKind.BET, tx, amount, round_id=round_id)


def win(tx: str, amount: int, round_id: str = "r1") -> WalletOp:
    return WalletOp(EventKind.WIN, tx, amount, round_id=round_id)


def rollback(tx: str, ref: str, *kinds: EventKind) -> WalletOp:
    return WalletOp(EventKind.ROLLBACK, tx, 0, ref_tx=ref, ref_kinds=kinds or (EventKind.BET,))


def clearing(w: GatewayWorld) -> int:
    found = w.wallet.ledger.balance(clearing_account("op1", "EUR"))
    return 0 if found is None else found.net_credit


def test_a_bet_and_a_win_move_the_wallet_and_log_one_event_each(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 1_000, region="eu", agent="store-1")
        answer = w.wallet.handle(P, call(bet("b1", 300), win("w1", 500)), "{}")
        assert answer.ok and answer.balance == 1_200
        assert clearing(w) == -200  # the operator's side of the player's net win
        events = w.events()
        assert [(e.kind, e.amount, e.operator, e.region, e.agent) for e in events] == [
            (EventKind.BET, 300, "op1", "eu", "store-1"),
            (EventKind.WIN, 500, "op1", "eu", "store-1"),
        ]
        assert {e.key for e in events} == {"acme:b1:bet", "acme:w1:win"}


def test_a_bet_beyond_the_balance_moves_nothing_and_logs_nothing(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 100)
        answer = w.wallet.handle(P, call(bet("b1", 60), bet("b2", 60)), "{}")
        assert answer.error is WalletError.INSUFFICIENT_FUNDS
        assert answer.balance == 100
        assert w.events() == []


def test_a_repeated_call_answers_the_same_and_counts_once(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 1_000)
        first = w.wallet.handle(P, call(bet("b1", 300)), "{}")
        again = w.wallet.handle(P, call(bet("b1", 300)), "{}")
        assert [o.status for o in again.outcomes] == [OpStatus.REPEATED]
        assert again.outcomes[0].transfer_id == first.outcomes[0].transfer_id
        assert again.balance == first.balance == 700
        assert len(w.events()) == 1
        assert w.kept() == []


def test_a_rollback_of_a_win_takes_it_back_and_a_second_rollback_does_not(
    tmp_path: Path,
) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 1_000)
        w.wallet.handle(P, call(bet("b1", 100), win("w1", 400)), "{}")
        undo = rollback("rb1", "w1", EventKind.BET, EventKind.WIN)
        assert w.wallet.handle(P, call(undo), "{}").balance == 900
        other = w.wallet.handle(P, call(rollback("rb2", "w1", EventKind.WIN)), "{}")
        assert [o.status for o in other.outcomes] == [OpStatus.ALREADY_ROLLED_BACK]
        assert other.balance == 900
        rb = [e for e in w.events() if e.kind is EventKind.ROLLBACK]
        assert [(e.key, e.ref, e.amount) for e in rb] == [("acme:rb1:rollback", "acme:w1:win", 400)]


def test_a_rollback_that_comes_first_cancels_its_bet_when_the_bet_comes(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 1_000)
        early = w.wallet.handle(P, call(rollback("rb1", "b1")), "{}")
        assert [o.status for o in early.outcomes] == [OpStatus.UNKNOWN_REFERENCE]
        late = w.wallet.handle(P, call(bet("b1", 300)), "{}")
        assert [o.status for o in late.outcomes] == [OpStatus.CANCELLED]
        assert late.balance == 1_000 and clearing(w) == 0
        # Both are logged, so settlement pairs them and counts neither.
        assert [(e.kind, e.ref) for e in w.events()] == [
            (EventKind.ROLLBACK, "acme:b1:bet"),
            (EventKind.BET, ""),
        ]


def test_a_bet_and_its_rollback_in_one_call_leave_the_wallet_as_it_was(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 1_000)
        answer = w.wallet.handle(P, call(bet("b1", 300), rollback("rb1", "b1")), "{}")
        assert answer.ok and answer.balance == 1_000


def test_the_same_transaction_id_with_another_amount_is_a_conflict(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 1_000)
        w.wallet.handle(P, call(bet("b1", 300)), "{}")
        answer = w.wallet.handle(P, call(bet("b1", 301)), "{}")
        assert answer.error is WalletError.CONFLICT and answer.balance == 700
        assert len(w.events()) == 1


def test_an_unknown_player_or_currency_is_named_as_such(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 1_000)
        assert w.wallet.handle(P, call(bet("b1", 1), player="p2"), "{}").error is (
            WalletError.UNKNOWN_PLAYER
        )
        assert w.wallet.handle(P, call(bet("b1", 1), currency="USD"), "{}").error is (
            WalletError.WRONG_CURRENCY
        )


def test_concurrent_bets_never_take_a_wallet_below_zero(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 1_000)
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda i: w.wallet.handle(P, call(bet(f"b{i}", 70)), "{}"), range(40))
            )
        taken = sum(1 for a in answers if a.ok)
        assert taken == 14  # 14 x 70 = 980 <= 1000 < 15 x 70
        assert w.balance("p1") == 1_000 - 70 * taken
        assert len(w.events()) == taken


def test_a_retried_zero_win_without_a_provider_time_is_not_a_conflict(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    with gateway_world(tmp_path, clock, {}, ["softswiss"]) as w:
        w.open_player("p1", "EUR", 1_000)
        w.wallet.handle(P, call(win("w0", 0)), "{}")
        clock.advance(timedelta(seconds=30))
        again = w.wallet.handle(P, call(win("w0", 0)), "{}")
        assert again.ok and w.kept() == []
        assert [e.key for e in w.events()] == ["acme:w0:win"]


def test_a_rollback_naming_another_players_transaction_is_refused(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 1_000)
        w.open_player("p2", "EUR", 1_000)
        assert w.wallet.handle(P, call(bet("b1", 300)), "{}").ok
        other = w.wallet.handle(P, call(rollback("rb1", "b1"), player="p2"), "{}")
        assert other.error is WalletError.REFUSED and "another player" in other.detail
        assert (w.balance("p1"), w.balance("p2")) == (700, 1_000)
        assert [e.key for e in w.events()] == ["acme:b1:bet"]
        # Its own player's rollback still voids it.
        assert w.wallet.handle(P, call(rollback("rb2", "b1")), "{}").balance == 1_000
