"""A round reads the wallets it has not met in one go, and caches them as one call's
lookup would: a gateway that starts under load would otherwise read them one call at a
time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tally.events.model import EventKind
from tally.kernel.clock import FixedClock
from tally.wallet.model import CallKind, WalletCall, WalletError, WalletOp
from tests.support.providers import gateway_world

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_a_round_reads_its_new_wallets_at_once_with_the_same_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with gateway_world(tmp_path, FixedClock(T0), {}, ["softswiss"]) as world:
        for i in range(30):
            world.open_player(f"p{i}", "EUR", 1_000)
        world.open_player("two", "EUR", 1_000)
        world.open_player("two", "USD", 500)
        ledger = world.wallet.ledger
        reads: list[list[str]] = []  # the owners of each wallet read, in order
        read = ledger.balances_by_owners

        def counted(kind: Any, owners: Sequence[str]) -> Any:
            reads.append(list(owners))
            return read(kind, owners)

        monkeypatch.setattr(ledger, "balances_by_owners", counted)
        bets = [
            WalletCall(
                CallKind.TRANSACT, f"p{i}", "EUR", ops=(WalletOp(EventKind.BET, f"b{i}", 10),)
            )
            for i in range(30)
        ]
        others = [
            WalletCall(CallKind.BALANCE, "two", "USD"),
            WalletCall(CallKind.BALANCE, "two"),  # two currencies, none named
            WalletCall(CallKind.BALANCE, "ghost", "EUR"),
        ]
        answers = world.wallet.handle_many([("softswiss", c, "{}") for c in bets + others])
        assert [(a.error, a.balance) for a in answers[:30]] == [(None, 990)] * 30
        usd, unnamed, ghost = answers[30:]
        assert (usd.error, usd.currency, usd.balance) == (None, "USD", 500)
        assert unnamed.error is WalletError.UNKNOWN_PLAYER  # as one call's lookup answers
        assert ghost.error is WalletError.UNKNOWN_PLAYER
        # The round's new players in one read; then, one by one, only what that read
        # could not settle (a wallet nobody has, a call naming none of two currencies).
        assert sorted(reads[0]) == sorted([*(f"p{i}" for i in range(30)), "two", "ghost"])
        assert all(len(r) == 1 for r in reads[1:])
        assert sorted({r[0] for r in reads[1:]}) == ["ghost", "two"]
        reads.clear()
        again = world.wallet.handle_many([("softswiss", c, "{}") for c in others[:1]])
        assert again[0].balance == 500 and reads == []  # cached
