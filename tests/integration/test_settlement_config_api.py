"""Contracts, partner trees and FX rates over the API: new versions only, audited."""

from __future__ import annotations

from datetime import UTC, datetime

from tally.settlement import codec
from tally.settlement.contracts import ContractTerms, flat
from tests.integration.apiworld import World

T = datetime(2026, 1, 1, tzinfo=UTC)


def _contract(version: int = 1, rate: str = "0.1") -> dict:
    terms = ContractTerms("c-acme", version, "acme", T, "EUR", {"*": flat(rate)})
    return codec.terms_to_dict(terms)


def test_a_contract_version_is_added_once_and_never_changed(world: World):
    h = world.headers("finance")
    first = world.client.post("/v1/contracts", json=_contract(), headers=h)
    assert (first.status_code, first.json()) == (201, {"outcome": "created"})
    again = world.client.post("/v1/contracts", json=_contract(), headers=h)
    assert (again.status_code, again.json()) == (200, {"outcome": "exists"})
    changed = world.client.post("/v1/contracts", json=_contract(rate="0.2"), headers=h)
    assert (changed.status_code, changed.json()["error"]["code"]) == (409, "version_conflict")
    assert (
        world.client.post("/v1/contracts", json=_contract(2, "0.2"), headers=h).status_code == 201
    )
    listed = world.client.get("/v1/contracts?provider=acme", headers=world.headers("auditor"))
    assert [(c["version"], c["rates"]["*"][0]["rate"]) for c in listed.json()] == [
        (1, "0.1"),
        (2, "0.2"),
    ]
    records = world.bo.audit.page(action="contract.version_added").items
    assert [r.entry.target for r in records] == ["contract:c-acme:v1", "contract:c-acme:v2"]
    assert records[0].entry.after == _contract()


def test_an_invalid_contract_is_refused_with_a_reason(world: World):
    bad = {**_contract(), "version": "one"}
    r = world.client.post("/v1/contracts", json=bad, headers=world.headers("admin"))
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_document")
    nul = {**_contract(), "provider": "ac\u0000me"}
    assert (
        world.client.post("/v1/contracts", json=nul, headers=world.headers("admin")).status_code
        == 422
    )


def test_fx_rates_import_idempotently_and_are_audited(world: World):
    h = world.headers("finance")
    rates = [
        {"base": "USD", "quote": "EUR", "effective_at": "2026-01-01T00:00:00Z", "rate": "0.9"},
        {"base": "JPY", "quote": "EUR", "effective_at": "2026-01-01T00:00:00Z", "rate": "0.006"},
    ]
    first = world.client.post("/v1/fx/rates", json=rates, headers=h).json()
    assert (first["created"], first["existing"]) == (2, 0)
    changed = [{**rates[0], "rate": "0.95"}, rates[1]]
    again = world.client.post("/v1/fx/rates", json=changed, headers=h).json()
    assert (again["created"], again["existing"], len(again["conflicts"])) == (0, 1, 1)
    listed = world.client.get("/v1/fx/rates", headers=h).json()
    assert sorted(r["rate"] for r in listed) == ["0.006", "0.9"]
    # One record: the import that added rates (the second added none; it changed nothing).
    assert len(world.bo.audit.page(action="fx.rates_imported").items) == 1


def test_a_tree_edit_moves_what_a_partner_sees_at_once(world: World):
    h = world.headers("admin")
    agent = {
        "id": "pa-new",
        "operator": "op1",
        "rolling_rate": "0.005",
        "losing_rate": "0.05",
        "effective_from": "2020-01-01T00:00:00+00:00",
    }
    assert world.client.post("/v1/partner-trees/agents", json=agent, headers=h).status_code == 201
    partner = world.headers("partner")
    assert (
        world.client.get("/v1/owners/partner/pa-new/balances", headers=partner).status_code == 404
    )
    place = {"agent": "pa-new", "parent": "pa-sub", "effective_from": "2020-01-01T00:00:00+00:00"}
    r = world.client.post("/v1/partner-trees/placements", json=place, headers=h)
    assert r.status_code == 201, r.text
    assert (
        world.client.get("/v1/owners/partner/pa-new/balances", headers=partner).status_code == 200
    )
    tree = world.client.get("/v1/partner-trees/op1", headers=world.headers("auditor")).json()
    assert {a["id"] for a in tree["agents"]} == {"pa", "pa-sub", "pa-new"}
    actions = [r.entry.action for r in world.bo.store.iter_audit()]
    assert "partner.agent_added" in actions and "partner.agent_placed" in actions
