"""Partner feeds and report uploads over the API, and the input quarantine's routes."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def test_a_feed_key_that_also_holds_a_staff_role_stays_within_its_scope(world: World) -> None:
    from tally.auth.model import OwnerRef
    from tally.auth.policy import Role
    from tally.ledger.model import OwnerKind

    _, token = world.bo.auth.create_api_key(
        "system",
        "op1 feed that also audits",
        frozenset({Role.FEED, Role.AUDITOR}),
        scope=frozenset({OwnerRef(OwnerKind.OPERATOR, "op1")}),
    )
    headers = {"Authorization": f"Bearer {token}"}
    r = world.client.post("/v1/feeds/op2/events", headers=headers, json=[event("t9")])
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    r = world.client.post("/v1/imports?provider=acme&name=r.csv", headers=headers, content=b"")
    assert r.status_code == 403
    # Its own operator it still may feed, and the auditor's reads still work.
    assert world.client.post("/v1/feeds/op1/events", headers=headers, json=[]).status_code == 200
    assert world.client.get("/v1/users", headers=headers).status_code == 200


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


def test_a_feed_nested_too_deeply_is_refused_whole_or_item_by_item(world: World) -> None:
    headers = world.headers("key_feed")
    whole = world.client.post("/v1/feeds/op1/events", headers=headers, content=b"[" * 20_000)
    assert (whole.status_code, whole.json()["error"]["code"]) == (422, "feed_refused")
    lines = b'{"a":' * 20_000 + b"\n" + json.dumps(event("d1")).encode()
    r = world.client.post("/v1/feeds/op1/events", headers=headers, content=lines)
    assert [(i["outcome"], i["detail"]) for i in r.json()] == [
        ("rejected", "not JSON: nested too deeply"),
        ("accepted", ""),
    ]


def test_a_byte_order_mark_does_not_spoil_a_feed(world: World) -> None:
    body = b"\xef\xbb\xbf" + json.dumps([event("bom1")]).encode()
    r = world.client.post("/v1/feeds/op1/events", headers=world.headers("key_feed"), content=body)
    assert [i["outcome"] for i in r.json()] == ["accepted"]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        name: st.one_of(_json_values, st.sampled_from(["", "op1", "2.50", "bet", "EUR"]))
        for name in event("x")
    },
)
_items = st.one_of(
    st.builds(lambda tx, extra: {**event(tx), **extra}, st.sampled_from(["h1", "h2"]), _fields),
    _json_values,
)
_bodies = st.one_of(
    st.binary(max_size=300),
    st.lists(_items, max_size=5).map(lambda items: json.dumps(items).encode()),
    st.lists(_items, max_size=5).map(
        lambda items: b"\n".join(json.dumps(i).encode() for i in items)
    ),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_bodies)
def test_any_feed_body_is_answered_without_a_server_error_or_a_half_write(
    world: World, body: bytes
) -> None:
    ingest = world.bo.ingest
    head = ingest.log.head()
    kept = len(ingest.inputs.entries(limit=1_000).items)
    r = world.client.post("/v1/feeds/op1/events", headers=world.headers("key_feed"), content=body)
    assert r.status_code in (200, 422), r.text
    new_events = len(ingest.log.read(head, 1_000))
    new_kept = len(ingest.inputs.entries(limit=1_000).items) - kept
    if r.status_code == 422:
        assert (new_events, new_kept) == (0, 0)  # refused whole: nothing of it was taken
        return
    outcomes = [i["outcome"] for i in r.json()]
    assert new_events == outcomes.count("accepted")
    assert new_kept == outcomes.count("rejected") + outcomes.count("conflict")


def test_an_uploaded_report_with_a_wrong_header_is_refused_whole(world: World) -> None:
    report = b"# tz=Mars/Olympus\ntx_id,kind,operator,player,game_type,amount,occurred_at\n"
    url = "/v1/imports?provider=acme&name=mars.csv"
    r = world.client.post(url, headers=world.headers("key_feed"), content=report)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "report_refused")


def test_a_feed_item_with_a_nul_or_a_lone_surrogate_in_a_field_is_refused(world: World) -> None:
    body = "\n".join(
        [
            json.dumps(event("n1", player="p\u0000")),
            json.dumps(event("n2", round_id="r\ud800")),
            json.dumps(event("n3", player="Grüße")),  # real non-ASCII text is fine
        ]
    ).encode()
    r = world.client.post("/v1/feeds/op1/events", headers=world.headers("key_feed"), content=body)
    assert r.status_code == 200, r.text
    assert [(i["outcome"], i["detail"]) for i in r.json()] == [
        ("rejected", "player: a NUL or a lone surrogate is not text"),
        ("rejected", "round_id: a NUL or a lone surrogate is not text"),
        ("accepted", ""),
    ]


def test_a_feed_key_reports_only_for_the_providers_in_its_scope(world: World) -> None:
    # The feed key's scope is operator op1 and provider acme: another provider's
    # transactions are not its to report.
    body = [event("t1"), event("t1", provider="evolution"), event("t2", provider="evolution")]
    r = world.client.post("/v1/feeds/op1/events", headers=world.headers("key_feed"), json=body)
    assert r.status_code == 200, r.text
    got = [(i["outcome"], i["reason"]) for i in r.json()]
    assert got == [("accepted", ""), ("rejected", "forbidden"), ("rejected", "forbidden")]
    assert "may not report for provider 'evolution'" in r.json()[1]["detail"]
    assert world.bo.ingest.log.head() == 1  # nothing of evolution's was logged

    staff = world.headers("operations")
    kept = world.client.get("/v1/quarantine/inputs?source=feed", headers=staff).json()["items"]
    assert [(k["reason"], k["key"]) for k in kept] == [
        ("forbidden", "feed:op1:evolution:t1:bet"),
        ("forbidden", "feed:op1:evolution:t2:bet"),
    ]
    assert json.loads(kept[0]["payload"])["provider"] == "evolution"  # as received
