"""The console's Alerts and Payouts pages over HTTP (no browser), on both stores: the
risk role acknowledges and silences with CSRF (audited as the API does), errors next to
their field with the API's messages, a partner cannot open another's alert by URL, open
alerts by severity on the Overview, and a run's approval refused for its maker."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tally.audit.service import Auditing
from tally.auth.policy import Role
from tally.kernel.alerts import AlertSignal, Severity
from tally.payouts.model import Counterparty, CounterpartyKind
from tally.risk.ports import AlertFilter
from tally.security import totp
from tests.integration.apiworld import PASSWORD, World, enrol
from tests.integration.test_console_http import _csrf, console_login
from tests.support.payouts import StaticPayables, payable


@pytest.fixture
def risk(world: World) -> World:
    user = world.bo.auth.create_user("system", "risk", PASSWORD, frozenset({Role.RISK}))
    world.user_ids["risk"] = user.id
    enrol(world, "risk")
    return world


def signal(w: World, key: str, **kw: object) -> int:
    base: dict[str, object] = {
        "kind": "risk.rtp_drift", "key": key, "severity": Severity.CRITICAL,
        "cause": f"RTP drift on {key}", "at": w.clock.now(),
        "provider": "acme", "region": "eu", "operator": "op1", "game": "g1",
        "money_at_risk": 123_456, "currency": "EUR", "confidence_permille": 500,
        "evidence": {"observed_rtp": "1.12", "band": "0.93-0.99"},
        "refs": ("event:acme:t1:bet",),
    }  # fmt: skip
    base.update(kw)
    w.bo.alerts.signal(AlertSignal(**base))  # type: ignore[arg-type]
    found = [a for a in w.bo.risk.alerts.list(_everything(), limit=500) if a.key == key]
    return found[-1].id


def _everything() -> AlertFilter:
    return AlertFilter()


def _rows(html: str, attr: str) -> list[str]:
    return re.findall(rf'<tr {attr}="([^"]+)"', html)


def test_alerts_are_listed_by_priority_with_filters_and_acknowledged_with_csrf(
    risk: World,
) -> None:
    w = risk
    small = signal(w, "acme/g1", money_at_risk=1_000)
    big = signal(w, "acme/g2", game="g2", money_at_risk=900_000, severity=Severity.WARNING)
    other = signal(w, "zeta/g9", provider="zeta", game="g9", kind="risk.ggr_drop")
    client = console_login(w, "risk")
    page = client.get("/console/alerts")
    assert page.status_code == 200
    # priority = money at risk x confidence: 450000, 61728, 500 (hand computed).
    assert _rows(page.text, "data-alert") == [str(big), str(other), str(small)]
    by_provider = client.get("/console/alerts", params={"provider": "zeta"})
    assert _rows(by_provider.text, "data-alert") == [str(other)]
    by_kind = client.get("/console/alerts", params={"kind": "risk.rtp_drift"})
    assert _rows(by_kind.text, "data-alert") == [str(big), str(small)]
    detail = client.get(f"/console/alerts/{small}")
    assert '<dt>band</dt><dd class="wrap">0.93-0.99</dd>' in detail.text
    assert "<code>event:acme:t1:bet</code>" in detail.text
    # Without the token (or with a forged one) nothing changes.
    for token in ("", "forged"):
        refused = client.post(f"/console/alerts/{small}/acknowledge", data={"csrf": token})
        assert refused.status_code == 403 and "csrf_refused" in refused.text
    assert w.bo.risk.alerts.get(small).status.value == "open"  # type: ignore[union-attr]
    done = client.post(f"/console/alerts/{small}/acknowledge", data={"csrf": _csrf(detail.text)})
    assert done.status_code == 200 and "acknowledged" in done.text
    a = w.bo.risk.alerts.get(small)
    assert a is not None and a.status.value == "acknowledged"
    assert a.acknowledged_by == f"user:{w.user_ids['risk']}"
    trail = [r.entry for r in w.bo.store.iter_audit() if r.entry.action == "alert.acknowledged"]
    assert [(e.target, e.actor, e.source) for e in trail] == [
        (f"alert:{small}", f"user:{w.user_ids['risk']}", "203.0.113.9")
    ]
    again = client.post(f"/console/alerts/{small}/acknowledge", data={"csrf": _csrf(detail.text)})
    assert again.status_code == 409 and 'id="err-_form" role="alert"' in again.text
    # Active alerts only by default: the acknowledged one is still active, a resolved not.
    assert str(small) in _rows(client.get("/console/alerts").text, "data-alert")


def test_a_silence_is_made_with_csrf_and_refusals_are_the_apis_next_to_the_field(
    risk: World,
) -> None:
    w = risk
    client = console_login(w, "risk")
    token = _csrf(client.get("/console/alerts").text)
    ends = (w.clock.now() + timedelta(hours=2)).isoformat()
    wide = {"csrf": token, "matchers": "provider=*", "reason": "everything", "ends_at": ends}
    r = client.post("/console/alerts/silences", data=wide)
    api = w.client.post(
        "/v1/alerts/silences", headers={"Authorization": f"Bearer {w.login('risk')}"},
        json={"matchers": ["provider=*"], "reason": "everything", "ends_at": ends},
    )  # fmt: skip
    error = api.json()["error"]
    assert r.status_code == api.status_code == 422
    assert f'id="err-matchers" role="alert">{error["message"]} ({error["code"]})' in r.text
    too_long = (w.clock.now() + timedelta(days=31)).isoformat()
    r = client.post("/console/alerts/silences", data={**wide, "matchers": "provider=acme",
                                                      "ends_at": too_long})  # fmt: skip
    assert (
        r.status_code == 422 and 'id="err-ends_at" role="alert">a silence lasts at most' in r.text
    )
    r = client.post("/console/alerts/silences", data={**wide, "matchers": "provider=acme",
                                                      "ends_at": "tomorrow"})  # fmt: skip
    assert r.status_code == 422 and 'id="err-ends_at" role="alert">' in r.text
    assert w.bo.risk.store.silences(active_at=w.clock.now()) == []
    ok = {**wide, "matchers": "provider=acme\ngame=g1", "reason": "recertification"}
    assert client.post("/console/alerts/silences", data={**ok, "csrf": "x"}).status_code == 403
    made = client.post("/console/alerts/silences", data=ok)
    assert made.status_code == 200 and "in force" in made.text
    (silence,) = w.bo.risk.store.silences(active_at=w.clock.now())
    alert_id = signal(w, "acme/g1")
    page = client.get("/console/alerts")
    assert f'<td class="wrap">silence:{silence.id}: recertification</td>' in page.text
    actions = [r.entry.action for r in w.bo.store.iter_audit()]
    assert actions.count("silence.created") == 1
    assert str(alert_id) in _rows(page.text, "data-alert")


def test_a_partner_sees_only_its_alerts_and_cannot_open_another_by_url(risk: World) -> None:
    w = risk
    mine = signal(w, "partner:pa-sub", kind="risk.partner_loss_shift", operator="")
    theirs = signal(w, "partner:pb", kind="risk.partner_loss_shift", operator="")
    op2 = signal(w, "acme/g2", operator="op2", game="g2")
    partner = console_login(w, "partner")
    page = partner.get("/console/alerts")
    assert _rows(page.text, "data-alert") == [str(mine)]
    assert "New silence" not in page.text and "Acknowledge" not in page.text
    assert partner.get(f"/console/alerts/{mine}").status_code == 200
    for other in (theirs, op2, 999_999):
        response = partner.get(f"/console/alerts/{other}")
        assert response.status_code == 404 and "alert_not_found" in response.text
        assert "RTP drift" not in response.text and "partner:pb" not in response.text
    token = _csrf(page.text)
    assert partner.post(f"/console/alerts/{mine}/acknowledge",
                        data={"csrf": token}).status_code == 403  # fmt: skip
    silence = {"csrf": token, "matchers": "provider=acme", "reason": "x",
               "ends_at": (w.clock.now() + timedelta(hours=1)).isoformat()}  # fmt: skip
    assert partner.post("/console/alerts/silences", data=silence).status_code == 403
    assert w.bo.risk.store.silences(active_at=w.clock.now()) == []
    # The overview counts only what the partner may see.
    home = partner.get("/console/").text
    assert 'data-live="a.alerts.critical">1<' in home


def test_the_overview_shows_open_alerts_by_severity(risk: World) -> None:
    w = risk
    signal(w, "acme/g1")
    signal(w, "acme/g2", game="g2")
    acked = signal(w, "acme/g3", game="g3", severity=Severity.WARNING)
    w.bo.risk.alerts.acknowledge(acked, _auditing(w))
    signal(w, "acme/g4", game="g4", severity=Severity.INFO)
    home = console_login(w, "risk").get("/console/").text
    assert 'data-live="a.alerts.critical">2<' in home
    assert 'data-live="a.alerts.warning">0<' in home
    assert 'data-live="a.alerts.info">1<' in home
    # finance has no alerts.read: no counts, no menu entry.
    finance = console_login(w, "finance").get("/console/").text
    assert "a.alerts." not in finance and 'href="/console/alerts"' not in finance


def _auditing(w: World) -> Auditing:
    return Auditing(w.bo.store, "user:test", "test")


@pytest.fixture
def run_world(world: World) -> World:
    """A run over the approval threshold waiting for a checker (made by ``finance``)."""
    world.bo.payouts.payables = StaticPayables(
        [payable("com:pa", "partner:pa", "EUR", 20_000),
         payable("com:pb", "partner:pb", "EUR", 30_000)]
    )  # fmt: skip
    world.bo.payouts.policy = type(world.bo.payouts.policy)(approval_above_default_minor=40_000)
    for party in ("pa", "pb"):
        cp = Counterparty(
            Counterparty.key(CounterpartyKind.PARTNER, party), CounterpartyKind.PARTNER, party,
            party.upper(), "internal", f"partner:{party}:wallet:EUR",
        )  # fmt: skip
        world.bo.payouts.register_counterparty(cp, _auditing(world))
    r = world.client.post(
        "/v1/payouts/runs", headers=world.headers("finance"), json={"currency": "EUR"}
    )
    assert r.status_code == 201, r.text
    world.run_id = r.json()["id"]  # type: ignore[attr-defined]
    return world


def _code(w: World, who: str) -> str:
    w.clock.advance(timedelta(seconds=31))
    return totp.code_at(w.totp_secrets[who], w.clock.now())


def test_a_run_is_shown_and_its_maker_may_not_approve_it(run_world: World) -> None:
    w = run_world
    run_id: str = w.run_id  # type: ignore[attr-defined]
    finance = console_login(w, "finance")
    listing = finance.get("/console/payouts")
    assert _rows(listing.text, "data-run") == [run_id]
    assert "awaiting_approval" in listing.text and "500.00 EUR" in listing.text
    page = finance.get(f"/console/payouts/runs/{run_id}")
    assert page.status_code == 200 and "You made this run" in page.text
    token = _csrf(page.text)
    no_token = {"csrf": "", "totp": _code(w, "finance")}
    assert finance.post(f"/console/payouts/runs/{run_id}/approve", data=no_token).status_code == 403
    mine = finance.post(f"/console/payouts/runs/{run_id}/approve",
                        data={"csrf": token, "totp": _code(w, "finance")})  # fmt: skip
    api = w.client.post(f"/v1/payouts/runs/{run_id}/approve", headers=w.headers("finance"),
                        json={"totp": _code(w, "finance")})  # fmt: skip
    error = api.json()["error"]
    assert mine.status_code == api.status_code == 403
    assert f'id="err-_form" role="alert">{error["message"]} (maker_cannot_approve)' in mine.text
    assert w.bo.payouts.run(run_id).status.value == "awaiting_approval"  # type: ignore[union-attr]
    admin = console_login(w, "admin")
    token = _csrf(admin.get(f"/console/payouts/runs/{run_id}").text)
    wrong = admin.post(f"/console/payouts/runs/{run_id}/approve",
                       data={"csrf": token, "totp": "000000"})  # fmt: skip
    assert wrong.status_code == 403
    assert 'id="err-totp" role="alert">' in wrong.text and "second_factor_refused" in wrong.text
    bad = admin.post(f"/console/payouts/runs/{run_id}/approve", data={"csrf": token, "totp": "12"})
    assert bad.status_code == 422 and 'id="err-totp"' in bad.text
    ok = admin.post(f"/console/payouts/runs/{run_id}/approve",
                    data={"csrf": token, "totp": _code(w, "admin")})  # fmt: skip
    assert ok.status_code == 200, ok.text
    run = w.bo.payouts.run(run_id)
    assert run is not None and run.status.value == "approved"
    assert run.approver == f"user:{w.user_ids['admin']}"
    approved = [
        r.entry for r in w.bo.store.iter_audit() if r.entry.action == "payouts.run.approved"
    ]
    assert len(approved) == 1 and approved[0].source == "203.0.113.9"
    shown = admin.get(f"/console/payouts/runs/{run_id}").text
    assert sorted(re.findall(r"<td data-state>([a-z]+)</td>", shown)) == ["requested", "requested"]


def test_a_partner_sees_only_its_own_lines_and_positions(run_world: World) -> None:
    w = run_world
    run_id: str = w.run_id  # type: ignore[attr-defined]
    partner = console_login(w, "partner")
    listing = partner.get("/console/payouts")
    assert listing.status_code == 200
    assert _rows(listing.text, "data-run") == []  # runs are listed to staff only
    assert "partner:pa" in listing.text and "partner:pb" not in listing.text
    page = partner.get(f"/console/payouts/runs/{run_id}")
    assert page.status_code == 200
    assert "partner:pa" in page.text and "partner:pb" not in page.text
    assert "500.00" not in page.text  # no totals for a partner
    assert "Approve run" not in page.text
    assert partner.get("/console/payouts/runs/no-such-run").status_code == 404
