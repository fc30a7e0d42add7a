"""A wallet callback and an operator's partner feed reporting the same transaction.

The feed's reports have keys of their own, so neither can refuse the other as a
conflict; settlement counts the provider's own event (in wallet mode, what moved the
money) and never the feed's report beside it, whichever came first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from tally.ingest.feeds import FeedService, ItemResult
from tally.settlement.contracts import ContractTerms, flat
from tally.settlement.service import SettlementWorker
from tally.settlement.source import LogSource
from tests.providers.test_wallet import P, bet, call, clearing, rollback, world
from tests.support.providers import GatewayWorld
from tests.support.settlement import BY, TestWorker

CONTRACT = ContractTerms(
    "acme-std", 1, P, datetime(2026, 1, 1, tzinfo=UTC), "EUR", {"*": flat("0.1")}
)
GGR = f"operator:op1:ggr:{P}:other:EUR"  # the wallet's games are of type "other"


def report(tx: str, amount: str, **kw: str) -> dict[str, str | int]:
    """An operator's feed item, as a partner system sends it."""
    item: dict[str, str | int] = {
        "schema_version": 1,
        "provider": P,
        "provider_tx_id": tx,
        "kind": "bet",
        "operator": "op1",
        "player": "p1",
        "game": "g1",
        "game_type": "other",
        "amount": amount,
        "currency": "EUR",
        "occurred_at": "2026-03-02T12:00:00+00:00",
    }
    item.update(kw)
    return item


def push(w: GatewayWorld, *items: dict[str, str | int]) -> list[ItemResult]:
    return FeedService(w.log, w.quarantine, w.clock).push("op1", json.dumps(items).encode())


class Settled:
    """The settlement worker over the wallet's own event log, run when asked, keeping its
    state in SQLite (so an effect counted in one run is taken back from the store)."""

    def __init__(self, w: GatewayWorld, path: Path) -> None:
        self.book = TestWorker([CONTRACT], sqlite_path=path)
        self.worker = SettlementWorker(
            LogSource(w.log), self.book.store, self.book.config, self.book.clock, by=BY
        )

    def ggr(self) -> int:
        self.worker.drain()
        assert self.book.store.problems() == []
        return self.book.net(GGR)

    def turnover(self) -> int:
        return sum(t.turnover for t in self.worker.book.figures.totals.values())


@contextmanager
def wallet_and_feed(tmp_path: Path) -> Iterator[tuple[GatewayWorld, Settled]]:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 1_000)
        settled = Settled(w, tmp_path / "settlement.sqlite")
        try:
            yield w, settled
        finally:
            settled.book.shutdown()


def test_a_feed_report_first_never_shadows_the_wallet_callback_that_follows(
    tmp_path: Path,
) -> None:
    with wallet_and_feed(tmp_path) as (w, settled):
        pushed = push(w, report("b1", "9.99"))
        assert [(r.outcome, r.key) for r in pushed] == [("accepted", "feed:op1:acme:b1:bet")]
        assert settled.ggr() == 999  # nothing else reports b1 yet: the report counts

        answer = w.wallet.handle(P, call(bet("b1", 300)), "{}")
        assert answer.ok and answer.balance == 700
        assert w.kept() == []  # the wallet's own event is logged, not refused as a conflict
        assert [e.key for e in w.events()] == ["feed:op1:acme:b1:bet", "acme:b1:bet"]
        # The ledger moved the wallet's 3.00, and settlement counts exactly that.
        assert clearing(w) == 300
        assert settled.ggr() == 300 and settled.turnover() == 300


def test_a_feed_report_after_the_wallet_callback_is_taken_and_counts_for_nothing(
    tmp_path: Path,
) -> None:
    with wallet_and_feed(tmp_path) as (w, settled):
        assert w.wallet.handle(P, call(bet("b1", 300)), "{}").ok
        assert settled.ggr() == 300

        pushed = push(w, report("b1", "9.99"), report("b1", "9.99"))
        assert [(r.outcome, r.key) for r in pushed] == [
            ("accepted", "feed:op1:acme:b1:bet"),
            ("duplicate", "feed:op1:acme:b1:bet"),
        ]
        assert w.kept() == []
        assert clearing(w) == 300
        assert settled.ggr() == 300 and settled.turnover() == 300


def test_the_wallet_and_the_feed_in_one_settlement_batch_count_the_wallets_amount_once(
    tmp_path: Path,
) -> None:
    with wallet_and_feed(tmp_path) as (w, settled):
        push(w, report("b1", "9.99"))
        w.wallet.handle(P, call(bet("b1", 300), bet("b2", 200)), "{}")
        push(w, report("b2", "2.00"))
        assert w.kept() == []
        assert clearing(w) == 500
        assert settled.ggr() == 500 and settled.turnover() == 500


def test_a_feed_rollback_voids_the_feeds_own_report_never_the_wallets_event(
    tmp_path: Path,
) -> None:
    with wallet_and_feed(tmp_path) as (w, settled):
        w.wallet.handle(P, call(bet("b1", 300)), "{}")
        # Named as the provider names it, or by the key the feed's answer gave.
        pushed = push(
            w,
            report("b1", "3.00"),
            report("b2", "4.00"),
            report("rb1", "0", kind="rollback", ref="acme:b1:bet"),
            report("rb2", "0", kind="rollback", ref="feed:op1:acme:b2:bet"),
        )
        assert [r.outcome for r in pushed] == ["accepted"] * 4
        refs = [e.ref for e in w.events() if e.kind.value == "rollback"]
        assert refs == ["feed:op1:acme:b1:bet", "feed:op1:acme:b2:bet"]
        # b1 is the wallet's 3.00 (the feed's report of it, and so its rollback, count
        # for nothing); b2 was only the feed's, and is voided.
        assert settled.ggr() == 300

        # The wallet's own rollback still voids the wallet's bet.
        w.wallet.handle(P, call(rollback("rb9", "b1")), "{}")
        assert clearing(w) == 0
        assert settled.ggr() == 0


def test_a_feed_item_cannot_pass_itself_off_as_the_providers_own(tmp_path: Path) -> None:
    with wallet_and_feed(tmp_path) as (w, _):
        pushed = push(w, report("b1", "3.00", source="provider"), report("b2", "1.00"))
        assert [(r.outcome, r.reason) for r in pushed] == [
            ("rejected", "forbidden"),
            ("accepted", ""),
        ]
        assert pushed[0].detail == "source: a feed's events are the feed's, not 'provider'"
        assert [e.source.value for e in w.events()] == ["feed"]
        assert w.kept() == ["forbidden"]
