"""Partner feeds and report uploads over the API, and the input quarantine's routes."""

from __future__ import annotations

import json

from tests.integration.apiworld import World


def event(tx: str, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema_version": 1,
        "provider": "acme",
        "provider_tx_id": tx,
        "kind": "bet",
        "operator": "op1",
        "player": "p-1",
        "game_type": "slots",
        "amount": "2.50",
        "currency": "EUR",
        "occurred_at": "2026-03-02T21:30:00+09:00",
        "channel": "mobile",
    }
    base.update(kw)
    return base


def test_a_feed_push_is_answered_item_by_item_and_refusals_are_kept(world: World) -> None:
    headers = world.headers("key_feed")
    body = [
        event("t1"),
        event("t2", amount="2.505"),  # more places than EUR has
        event("t3", operator="op2"),  # another operator's event
        event("t1"),  # again: a duplicate
        "not an object",
    ]
    r = world.client.post("/v1/feeds/op1/events", headers=headers, json=body)
    assert r.status_code == 200, r.text
    got = [(i["outcome"], i["reason"]) for i in r.json()]
    assert got == [
        ("accepted", ""),
        ("rejected", "malformed"),
        ("rejected", "forbidden"),
        ("duplicate", ""),
        ("rejected", "malformed"),
    ]
    again = world.client.post(
        "/v1/feeds/op1/events", headers=headers, json=[event("t1", amount="3.00")]
    )
    assert [i["outcome"] for i in again.json()] == ["conflict"]

    staff = world.headers("operations")
    kept = world.client.get("/v1/quarantine/inputs?source=feed", headers=staff).json()["items"]
    assert [k["reason"] for k in kept] == ["malformed", "forbidden", "malformed", "conflict"]
    assert json.loads(kept[0]["payload"])["amount"] == "2.505"  # as received

    refused = world.client.post(f"/v1/quarantine/inputs/{kept[0]['id']}/redrive", headers=staff)
    assert refused.json()["accepted"] is False  # nothing was fixed: refused again, stays open
    dismissed = world.client.post(
        f"/v1/quarantine/inputs/{kept[0]['id']}/dismiss",
        headers=staff,
        json={"note": "the operator resent it with two decimals"},
    )
    assert dismissed.json()["status"] == "dismissed"
    assert dismissed.json()["resolved_by"].startswith("user:")


def test_a_feed_key_pushes_only_for_its_own_operator(world: World) -> None:
    r = world.client.post(
        "/v1/feeds/op2/events", headers=world.headers("key_feed"), json=[event("t1")]
    )
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    r = world.client.post(
        "/v1/imports?provider=other&name=r.csv", headers=world.headers("key_feed"), content=b""
    )
    assert r.status_code == 403


def test_a_report_upload_imports_line_by_line_and_a_re_upload_skips(world: World) -> None:
    report = (
        b"tx_id,kind,operator,player,game_type,amount,occurred_at\n"
        b"f1,bet,op1,p-1,slots,1.00,2026-03-02 10:00\n"
        b"f2,bet,op1,p-1,slots,1.001,2026-03-02 10:00\n"
    )
    url = "/v1/imports?provider=acme&name=acme-0302.csv&tz=Europe/Malta&currency=EUR"
    r = world.client.post(url, headers=world.headers("key_feed"), content=report)
    assert r.status_code == 200, r.text
    assert r.json()["counts"] == {
        "lines": 2,
        "accepted": 1,
        "duplicate": 0,
        "conflict": 0,
        "rejected": 1,
    }
    again = world.client.post(url, headers=world.headers("key_feed"), content=report).json()
    assert again["resumed_after"] == 3 and again["counts"]["lines"] == 0
