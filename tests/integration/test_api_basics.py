"""The API's shapes: amounts as strings, UTC times, cursor pages, JSON errors, health, metrics."""

from __future__ import annotations

from datetime import timedelta

from tests.integration.apiworld import World


def test_health_and_readiness_answer_without_credentials(world: World):
    assert world.client.get("/health").json() == {"status": "ok"}
    assert world.client.get("/ready").json() == {"status": "ready"}


def test_a_balance_shows_amounts_as_decimal_strings(world: World):
    r = world.client.get(
        "/v1/accounts/partner:pa:commission:EUR/balance", headers=world.headers("finance")
    )
    assert r.status_code == 200
    assert r.json()["credits_posted"] == "12.34"
    assert r.json()["net_credit"] == "12.34"


def test_a_balance_at_an_instant_before_any_transfer_is_zero(world: World):
    before = (world.clock.now() - timedelta(days=1)).isoformat()
    r = world.client.get(
        "/v1/accounts/partner:pa:commission:EUR/balance",
        params={"at": before},
        headers=world.headers("auditor"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["credits_posted"] == "0.00"
    assert r.json()["at"].endswith("Z")


def test_an_instant_without_a_time_zone_is_refused(world: World):
    r = world.client.get(
        "/v1/accounts/platform:cash:EUR/balance",
        params={"at": "2026-01-01T00:00:00"},
        headers=world.headers("auditor"),
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"


def test_transfers_come_in_cursor_pages_with_utc_times(world: World):
    h = world.headers("operations")
    first = world.client.get("/v1/accounts/platform:cash:EUR/transfers?limit=2", headers=h).json()
    assert [t["id"] for t in first["items"]] == ["t-pa-1", "t-pb-1"]
    assert first["items"][0]["amount"] == "12.34"
    assert first["items"][0]["recorded_at"].endswith("Z")
    rest = world.client.get(
        f"/v1/accounts/platform:cash:EUR/transfers?limit=2&cursor={first['next_cursor']}",
        headers=h,
    ).json()
    assert [t["id"] for t in rest["items"]] == ["t-pasub-1", "t-op-1"]
    assert rest["next_cursor"] is None


def test_the_quarantine_shows_refused_requests_with_their_reason(world: World):
    r = world.client.get("/v1/quarantine/ledger-rejections", headers=world.headers("operations"))
    items = r.json()["items"]
    assert [(i["transfer_id"], i["reason"]) for i in items] == [
        ("t-bad", "credit_account_not_found")
    ]
    assert items[0]["amount"] == "0.01" and items[0]["transient"] is True


def test_errors_have_a_stable_code_and_a_message(world: World):
    r = world.client.get("/v1/accounts/nope", headers=world.headers("admin"))
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "account_not_found", "message": "no account 'nope'"}}
    assert world.client.get("/no/such/route").json()["error"]["code"] == "not_found"
    assert world.client.get("/v1/users").json()["error"]["code"] == "unauthenticated"


def test_a_malformed_cursor_is_a_client_error(world: World):
    r = world.client.get(
        "/v1/accounts/platform:cash:EUR/transfers?cursor=abc", headers=world.headers("admin")
    )
    assert r.status_code == 422


def test_metrics_count_requests_by_route_template_and_ledger_commits(world: World):
    world.client.get("/v1/accounts/platform:cash:EUR", headers=world.headers("admin"))
    text = world.client.get("/metrics", headers=world.headers("key_ops")).text
    assert 'route="/v1/accounts/{account_id}"' in text
    assert "tally_http_request_seconds_bucket" in text
    assert "platform:cash" not in text  # raw paths never become labels
    assert "tally_ledger_commit_seconds_count 2.0" in text


def test_the_openapi_description_lists_the_resources(world: World):
    paths = world.client.get("/openapi.json").json()["paths"]
    assert "/v1/accounts/{account_id}/balance" in paths
    assert "/v1/audit-records/verification" in paths


def test_the_last_admin_cannot_demote_itself(world: World):
    r = world.client.patch(
        f"/v1/users/{world.user_ids['admin']}",
        json={"roles": ["auditor"]},
        headers=world.headers("admin"),
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "last_admin")


def test_user_changes_are_audited_with_who_what_when_where_before_and_after(world: World):
    target = world.user_ids["operations"]
    r = world.client.patch(
        f"/v1/users/{target}", json={"roles": ["auditor"]}, headers=world.headers("admin")
    )
    assert r.status_code == 200 and r.json()["roles"] == ["auditor"]
    page = world.client.get(
        "/v1/audit-records",
        params={"action": "user.updated"},
        headers=world.headers("auditor"),
    ).json()
    record = page["items"][-1]
    assert record["actor"] == f"user:{world.user_ids['admin']}"
    assert record["target"] == f"user:{target}"
    assert record["source"] == "203.0.113.9"
    assert record["before"]["roles"] == ["operations"] and record["after"]["roles"] == ["auditor"]
    assert record["at"].endswith("Z") and len(record["prev_hash"]) == 64
    verification = world.client.get(
        "/v1/audit-records/verification", headers=world.headers("auditor")
    ).json()
    assert verification["intact"] is True and verification["checked"] > 10


def test_control_characters_in_identifiers_are_refused_not_crashed_on(world: World):
    h = world.headers("admin")
    assert world.client.get("/v1/accounts/a%00b", headers=h).status_code == 422
    assert world.client.get("/v1/audit-records?actor=a%00b", headers=h).status_code == 422
    r = world.client.post("/v1/auth/login", json={"username": "a\u0000b", "password": "x"})
    assert r.status_code == 422
