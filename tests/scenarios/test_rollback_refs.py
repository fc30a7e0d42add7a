"""A report's rollback names its original by the provider's transaction id, of any kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tally.ingest.lines import ReportFormat, to_event
from tally.settlement.contracts import ContractTerms, flat
from tally.settlement.engine import SettlementEvent
from tally.settlement.source import to_settlement
from tests.support.settlement import TestWorker

MAR = datetime(2026, 3, 1, tzinfo=UTC)
APR = datetime(2026, 4, 1, tzinfo=UTC)
FORMAT = ReportFormat("acme", UTC, "EUR")
CONTRACT = ContractTerms("acme-std", 1, "acme", MAR, "EUR", {"*": flat("0.10")})


def line(tx_id: str, kind: str, amount: str, ref: str = "") -> SettlementEvent:
    data: dict[str, Any] = {
        "tx_id": tx_id,
        "kind": kind,
        "operator": "op1",
        "player": "p1",
        "game_type": "slots",
        "amount": amount,
        "occurred_at": "2026-03-02T10:00:00",
        "ref": ref,
    }
    event = to_event(FORMAT, data, "", MAR)
    assert not hasattr(event, "reason"), event
    return to_settlement(event)  # type: ignore[arg-type]


def test_a_bare_reference_names_the_providers_transaction_of_any_kind() -> None:
    assert line("rb1", "rollback", "0", ref="w1").ref == "acme:w1:*"
    # A full idempotency key is kept as it is.
    assert line("rb1", "rollback", "0", ref="acme:w1:win").ref == "acme:w1:win"


def test_a_rollback_naming_a_win_by_its_transaction_id_takes_the_win_back() -> None:
    # bet 100.00, win 40.00, the win rolled back: GGR 100.00, fee 10.00
    for order in ("original first", "rollback first"):
        worker = TestWorker([CONTRACT])
        bet, win = line("b1", "bet", "100.00"), line("w1", "win", "40.00")
        rollback = line("rb1", "rollback", "0", ref="w1")
        events = [bet, win, rollback] if order == "original first" else [rollback, bet, win]
        for event in events:
            worker.feed([event], MAR)
        assert worker.store.problems() == [], order
        assert worker.store.orphans() == [], order
        totals = worker.close("acme-std", "op1", "2026-03", APR).to_dict()["totals"]
        assert (totals["wins"], totals["ggr"], totals["fee"]) == ("0.00", "100.00", "10.00")


def test_a_reference_that_names_two_transactions_is_refused_with_the_reason() -> None:
    worker = TestWorker([CONTRACT])
    worker.feed([line("t1", "bet", "100.00"), line("t1", "win", "40.00")], MAR)
    worker.feed([line("rb1", "rollback", "0", ref="t1")], MAR)
    [(key, reason, _)] = worker.store.problems()
    assert key == "acme:rb1:rollback"
    assert "ambiguous" in reason
    assert "acme:t1:bet" in reason and "acme:t1:win" in reason
    # Nothing was undone.
    totals = worker.close("acme-std", "op1", "2026-03", APR).to_dict()["totals"]
    assert (totals["turnover"], totals["wins"]) == ("100.00", "40.00")


def test_a_rollback_whose_original_never_came_stays_listed_after_the_close() -> None:
    worker = TestWorker([CONTRACT])
    worker.feed([line("b1", "bet", "100.00"), line("rb1", "rollback", "0", ref="nope")], MAR)
    worker.close("acme-std", "op1", "2026-03", APR + timedelta(days=1))
    [orphan] = worker.store.orphans()
    assert (orphan.waiting.ref, orphan.waiting.key) == ("acme:nope:*", "acme:rb1:rollback")
    assert (orphan.waiting.period, orphan.outlived_close) == ("2026-03", True)
