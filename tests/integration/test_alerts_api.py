"""The alerts API as the risk role and a partner use it: evidence and refs, acknowledge,
silences refused when too wide, rules refused when saved, a playbook's action undone,
and a partner sees only the alerts about its own operators and subtree."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tally.auth.policy import Role
from tally.kernel.alerts import AlertSignal, Severity
from tests.integration.apiworld import OPERATOR_OP1, PASSWORD, World, enrol


@pytest.fixture
def risk(world: World) -> World:
    user = world.bo.auth.create_user("system", "risk", PASSWORD, frozenset({Role.RISK}))
    world.user_ids["risk"] = user.id
    enrol(world, "risk")
    world.tokens["risk"] = world.login("risk")
    return world


def signal(w: World, key: str, **kw: object) -> None:
    base: dict[str, object] = {
        "kind": "risk.rtp_drift", "key": key, "severity": Severity.CRITICAL,
        "cause": "RTP of g1 at 112% against 96% certified", "at": w.clock.now(),
        "provider": "acme", "region": "eu", "operator": "op1", "game": "g1",
        "money_at_risk": 123_456, "currency": "EUR", "confidence_permille": 500,
        "evidence": {"observed_rtp": "1.12", "band": "0.93-0.99", "window": "1h"},
        "refs": ("event:acme:t1:bet",),
    }  # fmt: skip
    base.update(kw)
    w.bo.alerts.signal(AlertSignal(**base))  # type: ignore[arg-type]


def test_the_risk_role_reads_acknowledges_and_the_trail_keeps_it(risk: World) -> None:
    w = risk
    signal(w, "acme/g1")
    h = w.headers("risk")
    page = w.client.get("/v1/alerts?active=true&provider=acme", headers=h).json()
    (item,) = page["items"]
    assert item["money_at_risk"] == "1234.56" and item["priority"] == "61728"
    assert item["evidence"]["band"] == "0.93-0.99" and item["refs"] == ["event:acme:t1:bet"]
    shown = w.client.get(f"/v1/alerts/{item['id']}", headers=h).json()
    assert shown["alert"]["cause"].startswith("RTP of g1")
    r = w.client.post(f"/v1/alerts/{item['id']}/acknowledgement", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert r.json()["acknowledged_by"] == f"user:{w.user_ids['risk']}"
    again = w.client.post(f"/v1/alerts/{item['id']}/acknowledgement", headers=h)
    assert again.status_code == 409
    trail = [r.entry for r in w.bo.store.iter_audit() if r.entry.action.startswith("alert.")]
    assert [e.action for e in trail] == ["alert.opened", "alert.acknowledged"]
    assert trail[-1].source == "203.0.113.9"


def test_silences_and_rules_are_refused_when_saved_with_a_clear_reason(risk: World) -> None:
    w = risk
    h = w.headers("risk")
    ends = (w.clock.now() + timedelta(hours=2)).isoformat()
    wide = {"matchers": ["provider=*"], "reason": "everything", "ends_at": ends}
    r = w.client.post("/v1/alerts/silences", headers=h, json=wide)
    assert r.status_code == 422 and "every alert" in r.json()["error"]["message"]
    bad_dim = {"matchers": ["country=mt"], "reason": "x", "ends_at": ends}
    r = w.client.post("/v1/alerts/silences", headers=h, json=bad_dim)
    assert r.status_code == 422 and "unknown dimension 'country'" in r.json()["error"]["message"]
    ok = {"matchers": ["provider=acme", "game=g1"], "reason": "recertification", "ends_at": ends}
    r = w.client.post("/v1/alerts/silences", headers=h, json=ok)
    assert r.status_code == 201
    silence = r.json()
    signal(w, "acme/g1")
    (item,) = w.client.get("/v1/alerts", headers=h).json()["items"]
    assert item["muted"] == f"silence:{silence['id']}"
    r = w.client.post(f"/v1/alerts/silences/{silence['id']}/expiry", headers=h)
    assert r.status_code == 200 and r.json()["expired_at"]
    (item,) = w.client.get("/v1/alerts", headers=h).json()["items"]
    assert item["muted"] == ""
    everything = {"playbooks": [{"name": "p", "action": "hold_settlement", "match": {}}]}
    r = w.client.put("/v1/alerts/rules", headers=h, json=everything)
    assert r.status_code == 422 and "would act on every alert" in r.json()["error"]["message"]
    assert w.client.get("/v1/alerts/rules", headers=h).json()["version"] == 0
    good = {
        "hysteresis": {"hold_s": 600},
        "playbooks": [
            {"name": "hold", "action": "hold_settlement", "match": {"kind": "risk.rtp_drift"},
             "mode": "live"}
        ],
    }  # fmt: skip
    r = w.client.put("/v1/alerts/rules", headers=h, json=good)
    assert r.status_code == 200 and r.json()["version"] == 1


def test_a_playbooks_action_is_undone_in_one_click(risk: World) -> None:
    w = risk
    h = w.headers("risk")
    rules = {
        "playbooks": [
            {"name": "suspend", "action": "suspend_game", "match": {"kind": "risk.rtp_drift"},
             "mode": "live"}
        ]
    }  # fmt: skip
    assert w.client.put("/v1/alerts/rules", headers=h, json=rules).status_code == 200
    signal(w, "acme/g1")
    (action,) = w.client.get("/v1/alerts/actions", headers=h).json()
    assert (action["status"], action["target"]) == ("done", "acme/g1")
    assert w.bo.risk.store.switch(action_switch(), "acme/g1").on
    r = w.client.post(f"/v1/alerts/actions/{action['id']}/undo", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "undone"
    assert not w.bo.risk.store.switch(action_switch(), "acme/g1").on
    r = w.client.post(f"/v1/alerts/actions/{action['id']}/undo", headers=h)
    assert r.status_code == 409
    detail = w.client.get(f"/v1/alerts/{action['alert']}", headers=h).json()
    assert [a["status"] for a in detail["actions"]] == ["undone"]


def action_switch():  # type: ignore[no-untyped-def]
    from tally.risk.ports import SwitchKind

    return SwitchKind.GAME_SUSPENDED


def test_a_partner_sees_only_alerts_about_its_own_operators_and_subtree(risk: World) -> None:
    w = risk
    signal(w, "acme/g1", operator="op1")  # pa's operator
    signal(w, "acme/g2", operator="op2", game="g2")  # pb's operator
    signal(w, "partner:pa-sub", kind="risk.partner_loss_shift", operator="")  # pa's subtree
    signal(w, "partner:pb", kind="risk.partner_loss_shift", operator="")
    # An agent sees its subtree's alerts; an operator's partner user also the operator's.
    for who in ("partner", "key_partner"):
        items = w.client.get("/v1/alerts", headers=w.headers(who)).json()["items"]
        assert [i["key"] for i in items] == ["partner:pa-sub"], who
    _, token = w.bo.auth.create_api_key(
        "system", "op1 desk", frozenset({Role.PARTNER}), scope=frozenset({OPERATOR_OP1})
    )
    items = w.client.get("/v1/alerts", headers={"Authorization": f"Bearer {token}"}).json()
    assert sorted(i["key"] for i in items["items"]) == ["acme/g1", "partner:pa-sub"]
    everything = w.client.get("/v1/alerts", headers=w.headers("risk")).json()["items"]
    assert len(everything) == 4
    other = next(i for i in everything if i["key"] == "acme/g2")
    r = w.client.get(f"/v1/alerts/{other['id']}", headers=w.headers("partner"))
    assert r.status_code == 404
    mine = next(i for i in everything if i["key"] == "partner:pa-sub")
    shown = w.client.get(f"/v1/alerts/{mine['id']}", headers=w.headers("partner")).json()
    assert shown["deliveries"] == [] and shown["actions"] == []
    assert w.client.get("/v1/alerts/silences", headers=w.headers("partner")).status_code == 403
