"""A change and its audit record are one unit of work, whichever door the change comes by.

Over the API (SQLite and PostgreSQL): contracts, agents, placements, FX imports, and the
input quarantine's re-drive and dismissal. Through the use cases on both databases: a
wallet opened, a deposit, a period closed. Each is recorded; and when the audit append
fails, neither the change nor the record is there afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from tally.adapters.memory.quarantine import MemoryInputQuarantine
from tally.adapters.sql.backoffice import SqlBackofficeStore
from tally.audit.service import Auditing
from tally.quarantine.inputs import Reason, Refused, Status
from tally.quarantine.redrive import RedriveOutcome
from tally.settlement import codec
from tally.settlement.contracts import ContractTerms, flat
from tally.settlement.service import NoEvents, SettlementWorker
from tally.wallet.model import Wallet, deposits_account
from tally.wallet.service import WalletService
from tests.integration.apiworld import World

T = datetime(2025, 1, 1, tzinfo=UTC)


class AuditDown(RuntimeError):
    """The audit append failed (a full disk, a lost connection)."""


def _failing_append(self: object, cur: object, entry: object) -> Any:
    raise AuditDown("the audit append failed")


@pytest.fixture
def audit_fails(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every audit append, however reached, fails from now on."""

    monkeypatch.setattr(SqlBackofficeStore, "_append", _failing_append)
    yield


def _contract(contract_id: str = "c-audit") -> dict[str, Any]:
    terms = ContractTerms(contract_id, 1, "acme", T, "EUR", {"*": flat("0.1")})
    return codec.terms_to_dict(terms)


AGENT = {
    "id": "pa-audit",
    "operator": "op1",
    "rolling_rate": "0.005",
    "losing_rate": "0.05",
    "effective_from": "2020-01-01T00:00:00+00:00",
}
PLACE = {"agent": "pa-audit", "parent": "pa", "effective_from": "2020-01-01T00:00:00+00:00"}
RATES = [{"base": "USD", "quote": "EUR", "effective_at": "2026-01-01T00:00:00Z", "rate": "0.9"}]


def _actions(world: World) -> list[str]:
    return [r.entry.action for r in world.bo.store.iter_audit()]


def _kept(world: World) -> int:
    """An entry in the input quarantine that a re-drive accepts."""
    world.bo.ingest.desk.register("probe", lambda entry: RedriveOutcome(True, "fixed"))
    return world.bo.ingest.inputs.put(
        Refused("probe", "p", Reason.MALFORMED, "d", "{}", world.clock.now())
    )


# -- recorded, over the API -----------------------------------------------------------------


def test_configuration_edits_over_the_api_are_recorded_by_the_use_case(world: World) -> None:
    h = world.headers("admin")
    assert world.client.post("/v1/contracts", json=_contract(), headers=h).status_code == 201
    assert world.client.post("/v1/partner-trees/agents", json=AGENT, headers=h).status_code == 201
    r = world.client.post("/v1/partner-trees/placements", json=PLACE, headers=h)
    assert r.status_code == 201
    assert world.client.post("/v1/fx/rates", json=RATES, headers=h).json()["created"] == 1
    admin = f"user:{world.user_ids['admin']}"
    records = [
        r
        for r in world.bo.store.iter_audit()
        if r.entry.actor == admin and not r.entry.action.startswith(("login.", "user."))
    ]
    assert [(r.entry.action, r.entry.target) for r in records] == [
        ("contract.version_added", "contract:c-audit:v1"),
        ("partner.agent_added", "agent:pa-audit"),
        ("partner.agent_placed", "agent:pa-audit"),
        ("fx.rates_imported", "fx_rates"),
    ]
    assert {r.entry.source for r in records} == {"203.0.113.9"}
    assert world.bo.audit.verify()[1] == []


def test_a_redrive_and_a_dismissal_over_the_api_are_recorded(world: World) -> None:
    staff = world.headers("operations")
    first, second = _kept(world), _kept(world)
    r = world.client.post(f"/v1/quarantine/inputs/{first}/redrive", headers=staff)
    assert r.json()["accepted"] is True
    r = world.client.post(
        f"/v1/quarantine/inputs/{second}/dismiss", headers=staff, json={"note": "seen"}
    )
    assert r.status_code == 200
    actions = _actions(world)
    assert actions[-2:] == ["input_quarantine.redriven", "input_quarantine.dismissed"]


# -- a failed audit append leaves nothing, over the API ------------------------------------


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/v1/contracts", _contract()),
        ("/v1/partner-trees/agents", AGENT),
        ("/v1/fx/rates", RATES),
    ],
)
def test_a_configuration_edit_whose_audit_append_fails_is_not_kept(
    world: World, url: str, body: Any, audit_fails: None
) -> None:
    before = world.app.settlement_documents.revision()
    with pytest.raises(AuditDown):
        world.client.post(url, json=body, headers=world.headers("admin"))
    assert world.app.settlement_documents.revision() == before
    assert world.app.settlement_config.contracts("acme") == []
    assert world.app.settlement_documents.all("fx_rate") == []
    assert [a.id for a in world.app.settlement_config.partner_tree("op1").agents] == [
        "pa",
        "pa-sub",
    ]


def test_a_placement_whose_audit_append_fails_is_not_kept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = world.headers("admin")
    assert world.client.post("/v1/partner-trees/agents", json=AGENT, headers=h).status_code == 201
    before = world.app.settlement_documents.revision()
    monkeypatch.setattr(SqlBackofficeStore, "_append", _failing_append)
    with pytest.raises(AuditDown):
        world.client.post("/v1/partner-trees/placements", json=PLACE, headers=h)
    assert world.app.settlement_documents.revision() == before
    tree = world.app.settlement_config.partner_tree("op1")
    assert [p for p in tree.placements if p.agent == "pa-audit"] == []


def test_a_redrive_or_dismissal_whose_audit_append_fails_leaves_the_entry_open(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = world.headers("operations")
    entry = _kept(world)
    records = len(_actions(world))
    monkeypatch.setattr(SqlBackofficeStore, "_append", _failing_append)
    with pytest.raises(AuditDown):
        world.client.post(f"/v1/quarantine/inputs/{entry}/redrive", headers=staff)
    with pytest.raises(AuditDown):
        world.client.post(
            f"/v1/quarantine/inputs/{entry}/dismiss", headers=staff, json={"note": "seen"}
        )
    monkeypatch.undo()
    kept = world.bo.ingest.inputs.get(entry)
    assert kept is not None and kept.status is Status.OPEN
    assert len(_actions(world)) == records


# -- wallets and period closes, in the use cases, on both databases --------------------------


def _wallets(world: World) -> WalletService:
    # Opening and depositing use the ledger only; the call path's parts are not needed.
    return WalletService(
        world.app.ledger, cast(Any, None), cast(Any, None), MemoryInputQuarantine(), world.clock
    )


def test_a_wallet_opened_and_a_deposit_are_recorded_with_their_change(world: World) -> None:
    by = Auditing(world.bo.store, "system:cli", "cli")
    wallets = _wallets(world)
    wallet = wallets.open(Wallet("p-audit", "op1", "EUR"), by=by)
    wallets.open(wallet, by=by)  # again: nothing new, nothing recorded
    assert wallets.deposit(wallet, 500, "cash-1", by=by).code.ok
    assert wallets.deposit(wallet, 500, "cash-1", by=by).code.ok  # repeated: counted once
    assert wallets.balance(wallet) == 500
    records = [r.entry for r in world.bo.store.iter_audit() if r.entry.actor == "system:cli"]
    assert [(e.action, e.target) for e in records] == [
        ("wallet.opened", "wallet:player:p-audit:wallet:EUR"),
        ("wallet.deposited", "wallet:player:p-audit:wallet:EUR"),
    ]
    assert world.bo.audit.verify()[1] == []


def test_a_wallet_or_deposit_whose_audit_append_fails_is_not_kept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    by = Auditing(world.bo.store, "system:cli", "cli")
    wallets = _wallets(world)
    wallet = Wallet("p-lost", "op2", "EUR")
    monkeypatch.setattr(SqlBackofficeStore, "_append", _failing_append)
    with pytest.raises(AuditDown):
        wallets.open(wallet, by=by)
    assert world.app.ledger.account(wallet.account_id) is None
    monkeypatch.undo()
    wallets.open(wallet, by=by)
    monkeypatch.setattr(SqlBackofficeStore, "_append", _failing_append)
    with pytest.raises(AuditDown):
        wallets.deposit(wallet, 700, "cash-lost", by=by)
    monkeypatch.undo()
    assert wallets.balance(wallet) == 0
    assert world.app.ledger.get_transfer("deposit:cash-lost") is None
    deposits = world.app.ledger.balance(deposits_account("op2", "EUR"))
    assert deposits is not None and deposits.debits_posted == 0
    assert [
        r.entry.action for r in world.bo.store.iter_audit() if r.entry.actor == "system:cli"
    ] == ["wallet.opened"]


def _closing_worker(world: World) -> SettlementWorker:
    by = Auditing(world.bo.store, "system:cli", "cli")
    terms = codec.terms_from_dict(_contract("c-close"))
    world.app.settlement_config.put_contract(terms, world.clock.now(), by=by)
    app = world.app
    return SettlementWorker(
        NoEvents(), app.settlement_store, app.settlement_config, world.clock, by=by
    )


def test_a_period_close_is_recorded_with_its_statement(world: World) -> None:
    worker = _closing_worker(world)
    statement = worker.close_period("c-close", "op1", "2025-06")
    (record,) = [r.entry for r in world.bo.store.iter_audit() if r.entry.action == "period.closed"]
    assert record.target == "period:c-close:op1:2025-06"
    assert record.after is not None and record.after["sha256"] == statement.sha256


def test_a_period_close_whose_audit_append_fails_is_not_kept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _closing_worker(world)
    monkeypatch.setattr(SqlBackofficeStore, "_append", _failing_append)
    with pytest.raises(AuditDown):
        worker.close_period("c-close", "op1", "2025-06")
    monkeypatch.undo()
    assert world.app.settlement_store.statements() == []
    assert "period.closed" not in _actions(world)
    # Nothing half-done stands in the way: the close goes through once the trail is back.
    worker.close_period("c-close", "op1", "2025-06")
    assert len(world.app.settlement_store.statements()) == 1
