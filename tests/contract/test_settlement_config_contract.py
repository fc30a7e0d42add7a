"""Settlement configuration behaves the same on every store: memory, SQLite, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tally.adapters.memory.backoffice import scratch_auditing
from tally.settlement.config import ConfigConflict, PutOutcome, SettlementConfig
from tally.settlement.contracts import ContractError, ContractTerms, flat, in_force
from tally.settlement.fx import FxRate
from tally.settlement.partners import Agent, Placement
from tests.conftest import PG_DSN

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BY = scratch_auditing("system:test", "test")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SettlementConfig]:
    if request.param == "memory":
        from tally.adapters.memory.settlement import MemoryConfigDocuments

        yield SettlementConfig(MemoryConfigDocuments())
        return
    if request.param == "sqlite":
        from tally.adapters.sqlite.settlement import SqliteConfigDocuments

        docs = SqliteConfigDocuments(tmp_path / "tally.sqlite")
    else:
        from tally.adapters.postgres.settlement import PostgresConfigDocuments

        docs = PostgresConfigDocuments(PG_DSN, schema=request.getfixturevalue("pg_schema"))
    try:
        yield SettlementConfig(docs)
    finally:
        docs.close()


def contract(version: int = 1, **kw: object) -> ContractTerms:
    base: dict[str, object] = {
        "contract_id": "acme-std",
        "version": version,
        "provider": "acme",
        "effective_from": T0 + timedelta(days=31 * (version - 1)),
        "settlement_currency": "EUR",
        "rates": {"slots": flat("0.10"), "*": flat("0.12")},
        "minimum_fee": 50_000,
    }
    base.update(kw)
    return ContractTerms(**base)  # type: ignore[arg-type]


def test_a_contract_version_round_trips_exactly(config: SettlementConfig) -> None:
    terms = contract(gaming_tax_rate=Decimal("0.15"), timezone="Asia/Tokyo")
    assert config.put_contract(terms, T0, by=BY) is PutOutcome.CREATED
    assert config.contracts("acme") == [terms]
    assert config.contracts("other") == []


def test_the_same_version_again_is_a_no_op_and_different_content_is_a_conflict(
    config: SettlementConfig,
) -> None:
    config.put_contract(contract(), T0, by=BY)
    assert config.put_contract(contract(), T0, by=BY) is PutOutcome.EXISTS
    with pytest.raises(ConfigConflict, match="acme-std:1 exists with different content"):
        config.put_contract(contract(minimum_fee=1), T0, by=BY)
    assert [c.minimum_fee for c in config.contracts()] == [50_000]


def test_an_invalid_contract_is_refused_and_not_stored(config: SettlementConfig) -> None:
    with pytest.raises(ContractError, match=r"outside 0\.\.1"):
        config.put_contract(contract(rates={"*": flat("2")}), T0, by=BY)
    assert config.contracts() == []


def test_a_new_version_is_seen_by_readers_without_a_restart(config: SettlementConfig) -> None:
    config.put_contract(contract(1), T0, by=BY)
    before = config.snapshot()
    config.put_contract(contract(2, rates={"*": flat("0.08")}), T0, by=BY)
    after = config.snapshot()
    assert after.revision > before.revision
    feb = T0 + timedelta(days=40)
    assert in_force(config.contracts(), "acme", "op1", T0).version == 1
    assert in_force(config.contracts(), "acme", "op1", feb).version == 2
    # The cache is reused while nothing changes.
    assert config.snapshot() is after


def test_a_partner_tree_is_assembled_per_operator(config: SettlementConfig) -> None:
    for agent in (
        Agent("hq", "op1", Decimal("0.02"), Decimal("0.3"), T0),
        Agent("store", "op1", Decimal("0.01"), Decimal("0.1"), T0),
        Agent("other", "op2", Decimal("0.02"), Decimal("0.3"), T0),
    ):
        config.put_agent(agent, T0, by=BY)
    config.put_placement(Placement("hq", None, T0), T0, by=BY)
    config.put_placement(Placement("store", "hq", T0), T0, by=BY)
    config.put_placement(Placement("other", None, T0), T0, by=BY)
    tree = config.partner_tree("op1")
    assert [a.id for a in tree.path("store", T0)] == ["store", "hq"]
    assert tree.agent_ids() == {"hq", "store"}


def test_placing_an_unknown_agent_is_refused(config: SettlementConfig) -> None:
    with pytest.raises(ContractError, match="agent ghost is not known"):
        config.put_placement(Placement("ghost", None, T0), T0, by=BY)


def test_fx_rates_import_counts_new_existing_and_conflicting_rates(
    config: SettlementConfig,
) -> None:
    rate = FxRate("EUR", "USD", T0, Decimal("1.0850"), "ecb")
    first = config.put_fx_rates(
        [rate, FxRate("EUR", "JPY", T0, Decimal("162.5"), "ecb")], T0, by=BY
    )
    assert (first.created, first.existing, first.conflicts) == (2, 0, [])
    changed = FxRate("EUR", "USD", T0, Decimal("1.0900"), "ecb")
    again = config.put_fx_rates([rate, changed], T0, by=BY)
    assert (again.created, again.existing, again.conflicts) == (0, 1, [changed])
    assert config.fx().rate("EUR", "USD", T0 + timedelta(hours=1)) == Decimal("1.0850")
