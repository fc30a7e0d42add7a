"""Live figures slice the open totals without ever adding two currencies together."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tally.events.model import EventKind
from tally.settlement.contracts import ContractTerms, flat
from tally.settlement.engine import SettlementEvent
from tally.settlement.figures import Dimension, commissions_accrued, fees_accrued, live_totals
from tally.settlement.partners import Agent, Placement
from tests.support.settlement import TestWorker

T = datetime(2026, 3, 2, tzinfo=UTC)
EUR = ContractTerms(
    "acme-eu", 1, "acme", datetime(2026, 1, 1, tzinfo=UTC), "EUR", {"*": flat("0.10")}
)
JPY = ContractTerms(
    "zen-jp", 1, "zen", datetime(2026, 1, 1, tzinfo=UTC), "JPY", {"*": flat("0.20")}
)


def ev(key: str, kind: EventKind, provider: str, amount: int, **kw: str) -> SettlementEvent:
    fields = {
        "operator": "op1",
        "player": "p",
        "game_type": "slots",
        "region": "eu",
        "currency": "JPY" if provider == "zen" else "EUR",
    }
    fields.update(kw)
    return SettlementEvent(key, kind, provider, amount=amount, occurred_at=T, **fields)  # type: ignore[arg-type]


def worker() -> TestWorker:
    w = TestWorker(
        [EUR, JPY],
        agents=[Agent("store1", "op1", Decimal("0.01"), Decimal("0"), T.replace(day=1))],
        placements=[Placement("store1", None, T.replace(day=1))],
    )
    w.feed(
        [
            ev("a", EventKind.BET, "acme", 10_000),
            ev("b", EventKind.WIN, "acme", 4_000),
            ev("c", EventKind.BET, "acme", 5_000, region="asia", game_type="live"),
            ev("d", EventKind.BONUS_WIN, "acme", 1_000, region="asia", game_type="live"),
            ev("e", EventKind.BET, "zen", 9_000, region="asia", agent="store1"),
        ],
        T,
    )
    return w


def test_totals_by_provider_keep_currencies_apart() -> None:
    rows = live_totals(worker().worker.book.figures, [Dimension.PROVIDER])
    assert [(dict(r.key), r.totals.turnover, r.totals.ggr, r.ngr) for r in rows] == [
        ({"provider": "acme", "currency": "EUR"}, 15_000, 11_000, 10_000),
        ({"provider": "zen", "currency": "JPY"}, 9_000, 9_000, 9_000),
    ]


def test_totals_by_region_and_game_type_with_a_filter() -> None:
    rows = live_totals(
        worker().worker.book.figures,
        [Dimension.REGION, Dimension.GAME_TYPE],
        {Dimension.PROVIDER: "acme"},
    )
    assert [(dict(r.key), r.totals.ggr) for r in rows] == [
        ({"region": "asia", "game_type": "live", "currency": "EUR"}, 5_000),
        ({"region": "eu", "game_type": "slots", "currency": "EUR"}, 6_000),
    ]


def test_fees_and_commissions_accrued_so_far() -> None:
    figures = worker().worker.book.figures
    fees = {dict(r.key)["provider"]: r.accrued for r in fees_accrued(figures, [EUR, JPY])}
    assert fees == {"acme": 1_100, "zen": 1_800}
    only_zen = fees_accrued(figures, [EUR, JPY], {Dimension.PROVIDER: "zen"})
    assert [dict(r.key)["currency"] for r in only_zen] == ["JPY"]
    [row] = commissions_accrued(figures, agent="store1")
    assert (dict(row.key), row.accrued) == (
        {"agent": "store1", "operator": "op1", "period": "2026-03", "currency": "JPY"},
        90,
    )


def test_a_closed_period_shows_its_statements_fee_and_every_row_names_its_version() -> None:
    # March: v1 earns 10% of 60.00 = 6.00 and the minimum fee (v2's, in force at the end)
    # tops it up to 20.00 at the close. April is open: v2 earns 10% of 50.00 = 5.00.
    v1 = ContractTerms(
        "acme-eu", 1, "acme", datetime(2026, 1, 1, tzinfo=UTC), "EUR", {"*": flat("0.10")}
    )
    v2 = ContractTerms(
        "acme-eu",
        2,
        "acme",
        datetime(2026, 3, 20, tzinfo=UTC),
        "EUR",
        {"*": flat("0.10")},
        minimum_fee=2_000,
    )
    w = TestWorker([v1, v2])
    w.feed([ev("a", EventKind.BET, "acme", 10_000), ev("b", EventKind.WIN, "acme", 4_000)], T)
    w.close("acme-eu", "op1", "2026-03", datetime(2026, 4, 1, tzinfo=UTC))
    april = datetime(2026, 4, 2, tzinfo=UTC)
    w.feed(
        [SettlementEvent("c", EventKind.BET, "acme", "op1", "p", "slots", 5_000, "EUR", april)], T
    )
    rows = fees_accrued(w.worker.book.figures, [v1, v2], statements=w.store.statements())
    assert [
        (dict(r.key)["period"], dict(r.key)["version"], dict(r.key)["status"], r.accrued)
        for r in rows
    ] == [
        ("2026-03", "1", "closed", 2_000),
        ("2026-04", "2", "open", 500),
    ]
