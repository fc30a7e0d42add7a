"""Refused transfers: inspect, fix and re-drive, audited."""

from __future__ import annotations

from tests.integration.apiworld import World

URL = "/v1/quarantine/ledger-rejections"


def test_a_fixed_rejection_is_redriven_under_its_own_id_and_audited(world: World):
    h = world.headers("operations")
    r = world.client.post(
        f"{URL}/t-bad/redrive", json={"credit_account_id": "operator:op1:house:EUR"}, headers=h
    )
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and r.json()["result"] == "ok"
    assert r.json()["transfer"]["id"] == "t-bad" and r.json()["transfer"]["amount"] == "0.01"
    listed = world.client.get(URL, headers=h).json()["items"]
    assert [(i["transfer_id"], i["resolved"]) for i in listed] == [("t-bad", True)]
    again = world.client.post(f"{URL}/t-bad/redrive", json={}, headers=h)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_resolved")
    record = world.bo.audit.page(action="quarantine.redriven").items[0]
    assert record.entry.actor == "user:" + world.user_ids["operations"]
    assert record.entry.before and record.entry.before["credit_account_id"] == "nowhere"
    assert (
        record.entry.after and record.entry.after["credit_account_id"] == "operator:op1:house:EUR"
    )
    assert record.entry.detail["result"] == "ok"


def test_an_unfixed_redrive_is_refused_again_and_stays_in_quarantine(world: World):
    h = world.headers("finance")
    r = world.client.post(f"{URL}/t-bad/redrive", json={}, headers=h)
    assert r.json() == {"result": "credit_account_not_found", "ok": False, "transfer": None}
    items = world.client.get(URL, headers=h).json()["items"]
    assert all(not i["resolved"] for i in items) and len(items) == 2


def test_an_unknown_rejection_is_not_found(world: World):
    r = world.client.post(f"{URL}/nope/redrive", json={}, headers=world.headers("admin"))
    assert (r.status_code, r.json()["error"]["code"]) == (404, "rejection_not_found")


def test_amounts_cannot_be_changed_by_a_redrive(world: World):
    r = world.client.post(
        f"{URL}/t-bad/redrive", json={"amount": "1000.00"}, headers=world.headers("admin")
    )
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request")
