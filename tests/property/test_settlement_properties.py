"""Settlement properties, checked against an auditor written separately and simply.

Any order, any batching and any duplication of a set of events gives the same figures;
accruals posted to the ledger always equal the fee and commission computed from totals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TypeVar

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tally.adapters.memory.ledger import MemoryLedgerStore
from tally.events.model import EventKind
from tally.settlement.contracts import ContractTerms, Tier, Totals
from tally.settlement.engine import SettlementEvent
from tally.settlement.fx import FxRate
from tally.settlement.partners import Agent, Placement
from tests.support.settlement import TestWorker

K = TypeVar("K")
T0 = datetime(2026, 3, 1, tzinfo=UTC)
CONTRACTS = [
    ContractTerms(
        "acme-std",
        1,
        "acme",
        T0,
        "EUR",
        {
            "slots": (Tier(0, Decimal("0.10")), Tier(5_000, Decimal("0.05"))),
            "*": (Tier(0, Decimal("0.12")),),
        },
    ),
    # Settles in EUR although its games are played in JPY.
    ContractTerms("beta-jp", 1, "beta", T0, "EUR", {"*": (Tier(0, Decimal("0.15")),)}),
]
RATES = [FxRate("EUR", "JPY", T0, Decimal("160"))]
AGENTS = [
    Agent("hq", "op1", Decimal("0.02"), Decimal("0.30"), T0),
    Agent("store", "op1", Decimal("0.005"), Decimal("0.10"), T0),
]
PLACEMENTS = [Placement("hq", None, T0), Placement("store", "hq", T0)]


# -- the auditor: a plain loop over the set of events, sharing nothing with the engine ---
def audit(events: list[SettlementEvent]) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Expected GGR per (provider, game type), fee per provider, commission per agent."""
    unique = {e.key: e for e in events}
    voided = {e.ref for e in unique.values() if e.kind is EventKind.ROLLBACK}
    turnover: dict[tuple[str, str], int] = defaultdict(int)
    wins: dict[tuple[str, str], int] = defaultdict(int)
    commission: dict[str, Decimal] = defaultdict(Decimal)
    for e in unique.values():
        if e.kind is EventKind.ROLLBACK or e.key in voided:
            continue
        amount = e.amount
        if e.currency == "JPY":  # to EUR cents at 160 JPY per EUR, half-even per event
            amount = int((Decimal(amount) * 100 / 160).quantize(Decimal(1), ROUND_HALF_EVEN))
        stake = amount if e.kind is EventKind.BET else 0
        win = amount if e.kind is EventKind.WIN else 0
        turnover[(e.provider, e.game_type)] += stake
        wins[(e.provider, e.game_type)] += win
        if e.agent == "store":
            commission["store"] += Decimal("0.005") * stake + Decimal("0.10") * (stake - win)
            commission["hq"] += Decimal("0.015") * stake + Decimal("0.20") * (stake - win)
    ggr = {k: turnover[k] - wins[k] for k in turnover}
    fee: dict[str, Decimal] = defaultdict(Decimal)
    for (provider, game_type), g in ggr.items():
        if provider == "acme" and game_type == "slots":
            fee[provider] += (
                g * Decimal("0.10")
                if g <= 5_000
                else 5_000 * Decimal("0.10") + (g - 5_000) * Decimal("0.05")
            )
        elif provider == "acme":
            fee[provider] += g * Decimal("0.12")
        else:
            fee[provider] += g * Decimal("0.15")
    rounded = {p: int(v.quantize(Decimal(1), ROUND_HALF_EVEN)) for p, v in fee.items()}
    comm = {a: int(v.quantize(Decimal(1), ROUND_HALF_EVEN)) for a, v in commission.items()}
    return {f"{p}:{g}": v for (p, g), v in ggr.items()}, rounded, comm


# -- events -----------------------------------------------------------------------------
@st.composite
def event_sets(draw: st.DrawFn) -> list[SettlementEvent]:
    events: list[SettlementEvent] = []
    n_rounds = draw(st.integers(1, 12))
    for r in range(n_rounds):
        provider = draw(st.sampled_from(["acme", "beta"]))
        game_type = draw(st.sampled_from(["slots", "live"]))
        currency = "JPY" if provider == "beta" else "EUR"
        agent = draw(st.sampled_from(["", "store"]))
        at = T0 + timedelta(hours=draw(st.integers(0, 500)))
        common = {
            "provider": provider,
            "operator": "op1",
            "player": f"p{r % 3}",
            "game_type": game_type,
            "currency": currency,
            "agent": agent,
        }
        stake = draw(st.integers(1, 9_999))
        events.append(
            SettlementEvent(
                f"{provider}:r{r}:bet", EventKind.BET, amount=stake, occurred_at=at, **common
            )
        )  # type: ignore[arg-type]
        win = draw(st.integers(0, 20_000))
        if win:
            events.append(
                SettlementEvent(
                    f"{provider}:r{r}:win",
                    EventKind.WIN,
                    amount=win,
                    occurred_at=at + timedelta(seconds=5),
                    **common,
                )
            )  # type: ignore[arg-type]
        target = draw(st.sampled_from(["", "bet", "win"] if win else ["", "bet"]))
        if target:
            events.append(
                SettlementEvent(
                    f"{provider}:r{r}:rollback",
                    EventKind.ROLLBACK,
                    amount=0,
                    occurred_at=at + timedelta(seconds=9),
                    ref=f"{provider}:r{r}:{target}",
                    **common,  # type: ignore[arg-type]
                )
            )
    return events


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[SettlementEvent], list[list[SettlementEvent]]]:
    """A set of events, and one way of delivering it: shuffled, duplicated, in batches."""
    events = draw(event_sets())
    stream = draw(st.permutations(events))
    duplicates = draw(st.lists(st.sampled_from(events), max_size=5))
    for dup in duplicates:
        stream.insert(draw(st.integers(0, len(stream))), dup)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    batches = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return events, [b for b in batches if b]


def run(batches: list[list[SettlementEvent]]) -> TestWorker:
    """Deliver the batches, one after the other, to a settlement worker."""
    worker = TestWorker(CONTRACTS, agents=AGENTS, placements=PLACEMENTS, rates=RATES)
    for batch in batches:
        worker.feed(batch, T0)
    assert worker.store.problems() == []
    return worker


def ledger_figures(
    ledger: MemoryLedgerStore,
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    ggr: dict[str, int] = {}
    fee: dict[str, int] = {}
    comm: dict[str, int] = {}
    for provider in ("acme", "beta"):
        for game_type in ("slots", "live"):
            b = ledger.balance(f"operator:op1:ggr:{provider}:{game_type}:EUR")
            if b is not None:
                ggr[f"{provider}:{game_type}"] = b.net_credit
        b = ledger.balance(f"provider:{provider}:fee_payable:op1:EUR")
        if b is not None:
            fee[provider] = b.net_credit
    for agent in ("hq", "store"):
        b = ledger.balance(f"partner:{agent}:commission_payable:EUR")
        if b is not None:
            comm[agent] = b.net_credit
    return ggr, fee, comm


def _nonzero(d: Mapping[K, int]) -> dict[K, int]:
    return {k: v for k, v in d.items() if v}


@settings(max_examples=150, deadline=None)
@given(deliveries())
def test_ledger_figures_equal_the_auditors_whatever_the_delivery(
    delivery: tuple[list[SettlementEvent], list[list[SettlementEvent]]],
) -> None:
    events, batches = delivery
    ledger = run(batches).ledger
    expected_ggr, expected_fee, expected_comm = audit(events)
    ggr, fee, comm = ledger_figures(ledger)
    assert _nonzero(ggr) == _nonzero(expected_ggr)
    # Fees are per month; every generated event falls in March 2026.
    assert _nonzero(fee) == _nonzero(expected_fee)
    assert _nonzero(comm) == _nonzero(expected_comm)
    for currency, total in ledger.totals_by_currency().items():
        assert total.debits_posted == total.credits_posted, currency


@settings(max_examples=100, deadline=None)
@given(deliveries())
def test_two_different_deliveries_of_the_same_events_give_identical_totals(
    delivery: tuple[list[SettlementEvent], list[list[SettlementEvent]]],
) -> None:
    events, batches = delivery
    first = run(batches).worker.book
    second = run([list(reversed(events))]).worker.book
    assert {k: v for k, v in first.figures.totals.items() if v != Totals()} == {
        k: v for k, v in second.figures.totals.items() if v != Totals()
    }
    # A period touched only by a bet and its rollback accrues 0; absent means the same.
    assert _nonzero(first.figures.fee_accrued) == _nonzero(second.figures.fee_accrued)
    assert _nonzero(first.figures.commission_accrued) == _nonzero(second.figures.commission_accrued)


APR = datetime(2026, 4, 1, tzinfo=UTC)


def _rolled_back_alone() -> list[SettlementEvent]:
    """A bet rolled back with nothing else in its game type, beside one that stays."""
    common = {"provider": "acme", "operator": "op1", "player": "p1", "currency": "EUR"}
    return [
        SettlementEvent(
            "acme:r0:bet", EventKind.BET, amount=100, occurred_at=T0, game_type="slots", **common
        ),  # type: ignore[arg-type]
        SettlementEvent(
            "acme:r1:bet", EventKind.BET, amount=100, occurred_at=T0, game_type="live", **common
        ),  # type: ignore[arg-type]
        SettlementEvent(
            "acme:r0:rollback",
            EventKind.ROLLBACK,
            amount=0,
            occurred_at=T0,
            game_type="slots",
            ref="acme:r0:bet",
            **common,
        ),  # type: ignore[arg-type]
    ]


def _statements(batches: list[list[SettlementEvent]]) -> list[bytes]:
    worker = run(batches)
    return [worker.close(c.contract_id, "op1", "2026-03", APR).to_json() for c in CONTRACTS]


@settings(max_examples=100, deadline=None)
@given(deliveries())
@example((_rolled_back_alone(), [_rolled_back_alone()]))
def test_a_statement_is_a_function_of_the_facts_not_of_their_order(
    delivery: tuple[list[SettlementEvent], list[list[SettlementEvent]]],
) -> None:
    """A bet counted then rolled back, or rolled back before it arrived: the same facts,
    so the same bytes (a line that nets to nothing is left out either way)."""
    events, batches = delivery
    originals_first = sorted(events, key=lambda e: e.kind is EventKind.ROLLBACK)
    rollbacks_first = sorted(events, key=lambda e: e.kind is not EventKind.ROLLBACK)
    expected = _statements([originals_first])
    assert _statements([rollbacks_first]) == expected
    assert _statements(batches) == expected
