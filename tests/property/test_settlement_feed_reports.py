"""Settlement with operators' feed reports of the providers' own transactions.

A feed report of a transaction the provider reports too never counts beside the
provider's event: whatever the order, batching and duplication, and whatever the
report says (another amount, another game type, its own rollback), the figures are
those of the provider's events alone.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from tally.events.model import EventKind, feed_key
from tally.settlement.engine import SettlementEvent
from tests.property.test_settlement_properties import (
    _nonzero,
    audit,
    event_sets,
    ledger_figures,
    run,
)


@st.composite
def with_feed_reports(
    draw: st.DrawFn,
) -> tuple[list[SettlementEvent], list[list[SettlementEvent]]]:
    """Provider events, and a delivery of them mixed with feed reports of some of them."""
    own = [
        e if e.kind is EventKind.ROLLBACK else replace(e, twin=feed_key(e.operator, e.key))
        for e in draw(event_sets())
    ]
    reports: list[SettlementEvent] = []
    for e in own:
        if e.kind is EventKind.ROLLBACK or not draw(st.booleans()):
            continue
        report = replace(
            e,
            key=e.twin,
            twin=e.key,
            from_feed=True,
            amount=draw(st.integers(0, 50_000)),
            game_type=draw(st.sampled_from(["slots", "live"])),
        )
        reports.append(report)
        if draw(st.booleans()):  # the operator voids its own report
            reports.append(
                replace(
                    report,
                    key=feed_key(e.operator, f"{e.key}-void"),
                    kind=EventKind.ROLLBACK,
                    amount=0,
                    ref=report.key,
                    twin="",
                )
            )
    stream = draw(st.permutations(own + reports))
    for dup in draw(st.lists(st.sampled_from(stream), max_size=5)):
        stream.insert(draw(st.integers(0, len(stream))), dup)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    batches = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return own, [b for b in batches if b]


@settings(max_examples=150, deadline=None)
@given(with_feed_reports())
def test_feed_reports_of_the_providers_transactions_never_change_the_figures(
    delivery: tuple[list[SettlementEvent], list[list[SettlementEvent]]],
) -> None:
    own, batches = delivery
    ledger = run(batches).ledger  # refuses nothing: no report or its rollback is a problem
    expected_ggr, expected_fee, expected_comm = audit(own)
    ggr, fee, comm = ledger_figures(ledger)
    assert _nonzero(ggr) == _nonzero(expected_ggr)
    assert _nonzero(fee) == _nonzero(expected_fee)
    assert _nonzero(comm) == _nonzero(expected_comm)
    for currency, total in ledger.totals_by_currency().items():
        assert total.debits_posted == total.credits_posted, currency
