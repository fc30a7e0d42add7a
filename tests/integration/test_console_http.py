"""The console over HTTP (no browser): login with TOTP, the role matrix of its pages,
partner scope by URL, CSRF refusals, the CSP, and errors next to their field."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from tally.auth.policy import Role
from tally.security import totp
from tests.integration.apiworld import PASSWORD, World

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PAGES = (
    "/console/",
    "/console/ledger",
    "/console/settlement",
    "/console/quarantine",
    "/console/reconciliation",
    "/console/audit",
    "/console/admin",
    "/console/alerts",
    "/console/payouts",
)
# Which console pages each role may open (the rest answer 403), from the API's grants:
# alerts.read (admin, operations, auditor, risk, partner), payouts.read (admin, finance,
# auditor, partner).
MAY_OPEN = {
    "admin": set(PAGES),
    "finance": set(PAGES) - {"/console/audit", "/console/admin", "/console/alerts"},
    "operations": set(PAGES) - {"/console/audit", "/console/admin", "/console/payouts"},
    "auditor": set(PAGES),
    "partner": {
        "/console/",
        "/console/ledger",
        "/console/settlement",
        "/console/alerts",
        "/console/payouts",
    },
}


def _client(world: World) -> TestClient:
    return TestClient(world.client.app, client=("203.0.113.9", 5000))


def _csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def console_login(world: World, name: str, *, code: str | None = None) -> TestClient:
    client = _client(world)
    form = client.get("/console/login")
    assert form.status_code == 200
    world.clock.advance(timedelta(seconds=31))
    body = {"csrf": _csrf(form.text), "username": name, "password": PASSWORD}
    if code is not None:
        body["totp_code"] = code
    elif name in world.totp_secrets:
        body["totp_code"] = totp.code_at(world.totp_secrets[name], world.clock.now())
    done = client.post("/console/login", data=body, follow_redirects=False)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/console/"
    return client


def test_login_needs_the_totp_code_and_says_so_next_to_the_field(world: World) -> None:
    client = _client(world)
    form = client.get("/console/login")
    world.clock.advance(timedelta(seconds=31))
    refused = client.post(
        "/console/login",
        data={"csrf": _csrf(form.text), "username": "finance", "password": PASSWORD,
              "totp_code": "000000"},
    )  # fmt: skip
    assert refused.status_code == 401
    # The API's own code and message, under the code's field.
    api = world.client.post(
        "/v1/auth/login",
        json={"username": "finance", "password": PASSWORD, "totp_code": "000000"},
    )
    message = api.json()["error"]["message"]
    assert f'id="err-totp_code" role="alert">{message} (invalid_mfa_code)' in refused.text
    assert "tally_console=" not in refused.headers.get("set-cookie", "")
    ok = console_login(world, "finance")
    assert ok.get("/console/").status_code == 200


def test_a_page_without_a_session_sends_to_the_login(world: World) -> None:
    response = _client(world).get("/console/ledger", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"


@pytest.mark.parametrize("name", sorted(MAY_OPEN))
def test_each_role_opens_its_pages_and_only_those(world: World, name: str) -> None:
    client = console_login(world, name)
    home = client.get("/console/")
    for page in PAGES:
        response = client.get(page)
        expected = 200 if page in MAY_OPEN[name] else 403
        assert response.status_code == expected, (name, page, response.text[:300])
        # The navigation offers exactly the pages the role may open.
        assert (f'href="{page}"' in home.text) == (page in MAY_OPEN[name]), (name, page)


def test_pages_send_a_strict_csp_and_carry_no_inline_script_or_style(world: World) -> None:
    client = console_login(world, "admin")
    for page in (*PAGES, "/console/login"):
        response = client.get(page)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text) is None, page
        assert " style=" not in response.text, page
        assert re.search(r"\son[a-z]+=", response.text) is None, page  # no inline handlers


def test_a_form_without_the_csrf_token_changes_nothing(world: World) -> None:
    admin = console_login(world, "admin")
    body = {"username": "mallory", "password": "a long enough password", "roles.auditor": "on"}
    for token in ("", "forged", _csrf(console_login(world, "auditor").get("/console/").text)):
        refused = admin.post("/console/admin/users", data={**body, "csrf": token})
        assert refused.status_code == 403
        assert "csrf_refused" in refused.text
    names = [u["username"] for u in world.client.get(
        "/v1/users", headers=world.headers("admin")).json()["items"]]  # fmt: skip
    assert "mallory" not in names
    # With its own token the same form works.
    token = _csrf(admin.get("/console/admin").text)
    created = admin.post("/console/admin/users", data={**body, "csrf": token})
    assert created.status_code == 200 and "user mallory created" in created.text


def test_form_errors_are_the_apis_next_to_the_field(world: World) -> None:
    admin = console_login(world, "admin")
    token = _csrf(admin.get("/console/admin").text)
    bad = {"csrf": token, "username": "bad name!", "password": PASSWORD, "roles.auditor": "on"}
    response = admin.post("/console/admin/users", data=bad)
    assert response.status_code == 422
    api = world.client.post(
        "/v1/users",
        headers=world.headers("admin"),
        json={"username": "bad name!", "password": PASSWORD, "roles": ["auditor"]},
    )
    error = api.json()["error"]
    assert f'id="err-username" role="alert">{error["message"]} ({error["code"]})' in response.text


def test_a_partner_cannot_reach_another_subtree_by_url(world: World) -> None:
    partner = console_login(world, "partner")
    own = partner.get("/console/ledger", params={"account": "partner:pa-sub:commission:EUR"})
    assert own.status_code == 200
    api = world.client.get(
        "/v1/accounts/partner:pa-sub:commission:EUR/balance", headers=world.headers("partner")
    ).json()
    assert f'data-balance="now">{api["net_credit"]}<' in own.text
    for url, params in (
        ("/console/ledger", {"account": "partner:pb:commission:EUR"}),
        ("/console/ledger", {"owner": "partner:pb"}),
        ("/console/ledger", {"account": "operator:op1:house:EUR"}),
    ):
        response = partner.get(url, params=params)
        assert response.status_code == 404, params
        assert "98,765" not in response.text and "987.65" not in response.text
    assert partner.get("/console/ledger/transfers/t-pb-1").status_code == 404
    assert partner.get("/console/ledger/transfers/t-pa-1").status_code == 200
    assert partner.get("/console/quarantine").status_code == 403


def test_logout_ends_the_session_everywhere(world: World) -> None:
    client = console_login(world, "auditor")
    token = _csrf(client.get("/console/").text)
    cookie = client.cookies.get("tally_console")
    assert cookie
    out = client.post("/console/logout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303
    # The session token itself is revoked, not only the cookie dropped.
    assert (
        world.client.get("/v1/auth/me", headers={"Authorization": f"Bearer {cookie}"}).status_code
        == 401
    )


def test_a_role_that_needs_mfa_enrols_before_anything_else(world: World) -> None:
    world.bo.auth.create_user("system", "newfin", PASSWORD, frozenset({Role.FINANCE}))
    client = console_login(world, "newfin")
    # Half logged in: every page sends to the enrolment, which makes no secret on a GET.
    sent = client.get("/console/ledger", follow_redirects=False)
    assert (sent.status_code, sent.headers["location"]) == (303, "/console/enrol")
    start = client.get("/console/enrol")
    assert start.status_code == 200 and "data-secret" not in start.text
    begun = client.post("/console/enrol/begin", data={"csrf": _csrf(start.text)})
    secret = re.search(r"<code data-secret>([A-Z2-7]+)</code>", begun.text)
    assert secret, begun.text
    form = {"csrf": _csrf(begun.text), "secret": secret.group(1)}  # as the page sends it
    wrong = client.post("/console/enrol", data={**form, "code": "000000"})
    assert wrong.status_code == 422 and 'id="err-code"' in wrong.text
    code = totp.code_at(secret.group(1), world.clock.now())
    done = client.post("/console/enrol", data={**form, "code": code}, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, "/console/")
    assert client.get("/console/ledger").status_code == 200


def test_quarantine_dismiss_needs_a_note_and_redrive_fixes_a_refused_transfer(
    world: World,
) -> None:
    from tally.quarantine.inputs import Reason, Refused

    entry = world.bo.ingest.inputs.put(
        Refused("feed", "op1", Reason.MALFORMED, "currency: is required", "{}",
                world.clock.now())
    )  # fmt: skip
    auditor = console_login(world, "auditor")
    page = auditor.get(f"/console/quarantine/inputs/{entry}")
    assert page.status_code == 200 and "currency: is required" in page.text
    assert "Dismiss" not in page.text  # no acting without quarantine.redrive
    refused = auditor.post(
        f"/console/quarantine/inputs/{entry}/dismiss", data={"csrf": _csrf(page.text), "note": "x"}
    )
    assert refused.status_code == 403
    ops = console_login(world, "operations")
    token = _csrf(ops.get(f"/console/quarantine/inputs/{entry}").text)
    no_note = ops.post(f"/console/quarantine/inputs/{entry}/dismiss", data={"csrf": token})
    api = world.client.post(
        f"/v1/quarantine/inputs/{entry}/dismiss",
        headers=world.headers("operations"),
        json={"note": " "},
    )
    # The API's status and own words for the same refusal, next to the field.
    assert no_note.status_code == api.status_code == 409
    assert api.json()["error"]["message"] in no_note.text
    assert 'id="err-note"' in no_note.text
    dismissed = ops.post(
        f"/console/quarantine/inputs/{entry}/dismiss",
        data={"csrf": token, "note": "a test feed"},
    )
    assert dismissed.status_code == 200 and "data-status>dismissed<" in dismissed.text
    records = world.client.get(
        "/v1/audit-records", params={"action": "input_quarantine.dismissed"},
        headers=world.headers("admin"),
    ).json()["items"]  # fmt: skip
    assert [r["target"] for r in records] == [f"input_quarantine:{entry}"]
    # A refused ledger transfer, re-driven with its credit account fixed.
    assert world.app.ledger.get_transfer("t-bad") is None
    fixed = ops.post(
        "/console/quarantine/ledger/t-bad/redrive",
        data={"csrf": token, "credit_account_id": "partner:pa:commission:EUR"},
    )
    assert fixed.status_code == 200, fixed.text
    assert "t-bad: ok" in fixed.text
    moved = world.app.ledger.get_transfer("t-bad")
    assert moved is not None and moved.credit_account_id == "partner:pa:commission:EUR"


def test_an_api_key_is_shown_once_and_revoked(world: World) -> None:
    admin = console_login(world, "admin")
    token = _csrf(admin.get("/console/admin").text)
    made = admin.post(
        "/console/admin/keys", data={"csrf": token, "name": "grafana", "key_roles.operations": "on"}
    )
    assert made.status_code == 200
    secret = re.search(r"<code class=\"wrap\" data-token>(tk_[^<]+)</code>", made.text)
    assert secret
    headers = {"Authorization": f"Bearer {secret.group(1)}"}
    assert world.client.get("/metrics", headers=headers).status_code == 200
    assert secret.group(1) not in admin.get("/console/admin").text  # shown once
    key_id = next(
        k["id"] for k in world.client.get("/v1/api-keys", headers=world.headers("admin")).json()[
            "items"] if k["name"] == "grafana"
    )  # fmt: skip
    revoked = admin.post(f"/console/admin/keys/{key_id}/revoke", data={"csrf": token})
    assert revoked.status_code == 200
    assert world.client.get("/metrics", headers=headers).status_code == 401


def test_the_audit_page_verifies_the_chain_on_demand_and_tells_a_broken_one(
    world: World,
) -> None:
    auditor = console_login(world, "auditor")
    assert "data-verify" not in auditor.get("/console/audit").text  # not walked by default
    api = world.client.get("/v1/audit-records/verification", headers=world.headers("auditor"))
    checked = api.json()["checked"]
    intact = auditor.get("/console/audit", params={"verify": "1"}).text
    # The console's own login added records since the API's walk: at least as many.
    found = re.search(r'data-verify="intact">Chain intact: (\d+) records', intact)
    assert found and int(found.group(1)) >= checked
    # Edit one record behind the chain's back: the page says so.
    if world.app.settings.mode != "embedded":
        return
    import sqlite3

    db = sqlite3.connect(world.app.settings.sqlite_path)
    db.execute("DROP TRIGGER audit_records_no_update")  # the trail refuses edits
    db.execute("UPDATE audit_records SET actor = 'user:mallory' WHERE seq = 2")
    db.commit()
    db.close()
    broken = auditor.get("/console/audit", params={"verify": "1"}).text
    assert 'data-verify="broken"' in broken
