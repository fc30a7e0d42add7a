"""Every endpoint, called as every role (and anonymously): allowed and denied outcomes.

The expectations are written out here by hand rather than derived from the policy
table, so a change to the policy that is not also made here fails this test.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest

from tally.auth.policy import Role
from tests.integration.apiworld import World

CALLERS = (
    "anonymous",
    "admin",
    "finance",
    "operations",
    "auditor",
    "partner",
    "key_ops",
    "key_partner",
    "key_feed",
)
EVERYONE = frozenset(CALLERS)
USERS = frozenset({"admin", "finance", "operations", "auditor", "partner"})
LEDGER = frozenset(
    {"admin", "finance", "operations", "auditor", "partner", "key_ops", "key_partner"}
)
STAFF_AND_OPS_KEY = frozenset({"admin", "finance", "operations", "auditor", "key_ops"})
ADMIN_AND_AUDITOR = frozenset({"admin", "auditor"})
ADMIN = frozenset({"admin"})
CONFIG_WRITERS = frozenset({"admin", "finance"})
STATEMENT_READERS = frozenset({"admin", "finance", "auditor", "partner", "key_partner"})
REDRIVERS = frozenset({"admin", "finance", "operations", "key_ops"})
PUSHERS = frozenset({"admin", "key_feed"})
# Never partners: a break names other operators' transactions and the provider's figures.
RECON_READERS = frozenset({"admin", "finance", "operations", "auditor", "key_ops"})
RECON_WRITERS = frozenset({"admin", "finance"})
# Finance makes and approves runs; auditors read; partners read their own subtree only
# (runs' own lists and counterparties' payment details are staff's).
PAYOUT_WRITERS = frozenset({"admin", "finance"})
PAYOUT_STAFF_READERS = frozenset({"admin", "finance", "auditor"})
PAYOUT_READERS = frozenset({"admin", "finance", "auditor", "partner", "key_partner"})
# Partners read the alerts about their own operators and subtree; silences, rules and
# playbook actions are staff only. Acting (acknowledge, silence, rules, playbooks) is the
# risk role's (not a caller here: tests/integration/test_alerts_api.py) and the admin's.
ALERT_READERS = frozenset({"admin", "operations", "auditor", "partner", "key_ops", "key_partner"})
ALERT_STAFF_READERS = frozenset({"admin", "operations", "auditor", "key_ops"})


def _silence(world: World) -> dict[str, Any]:
    ends = world.clock.now().replace(year=world.clock.now().year + 1)
    return {"matchers": ["provider=nobody"], "reason": "matrix", "ends_at": ends.isoformat()}


# The risk role reads them too; none of the callers here has it (test_risk_api.py does).
RISK_READERS = frozenset({"admin", "finance", "operations", "auditor", "key_ops"})

_counter = itertools.count()


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # the route template, as in the OpenAPI description
    allowed: frozenset[str]
    url: str = ""  # concrete URL; defaults to ``path``
    body: Any = None
    fresh_session: bool = False  # the call ends the session, so use a throwaway one

    def concrete(self, world: World) -> tuple[str, Any]:
        url = self.url or self.path
        if "{key}" in url:
            url = url.replace("{key}", _victim_key(world))
        url = url.format(victim=world.user_ids["partner_b"])
        body = self.body(world) if callable(self.body) else self.body
        return url, body


def _new_user(_: World) -> dict[str, Any]:
    return {
        "username": f"new{next(_counter)}",
        "password": "a long enough pw",
        "roles": ["operations"],
    }


def _new_key(_: World) -> dict[str, Any]:
    return {"name": f"key{next(_counter)}", "roles": ["auditor"]}


def _victim_key(world: World) -> str:
    key, _ = world.bo.auth.create_api_key("system", "victim", frozenset({Role.AUDITOR}))
    return key.id


OWN_ACCOUNT = "partner:pa:commission:EUR"
CALLS = [
    Call("GET", "/health", EVERYONE),
    Call("GET", "/ready", EVERYONE),
    Call("GET", "/metrics", STAFF_AND_OPS_KEY),
    Call(
        "POST",
        "/v1/auth/login",
        EVERYONE,
        body={"username": "nobody", "password": "wrong password"},
    ),
    Call("POST", "/v1/auth/logout", USERS, fresh_session=True),
    Call("GET", "/v1/auth/me", USERS),
    Call(
        "POST",
        "/v1/auth/password",
        USERS,
        body={"current_password": "not my password", "new_password": "another long password"},
    ),
    Call("POST", "/v1/auth/mfa/enrolment", USERS, fresh_session=True),
    Call("POST", "/v1/auth/mfa/confirmation", USERS, body={"code": "000000"}),
    Call("GET", "/v1/accounts/{account_id}", LEDGER, url=f"/v1/accounts/{OWN_ACCOUNT}"),
    Call(
        "GET",
        "/v1/accounts/{account_id}/balance",
        LEDGER,
        url=f"/v1/accounts/{OWN_ACCOUNT}/balance",
    ),
    Call(
        "GET",
        "/v1/accounts/{account_id}/transfers",
        LEDGER,
        url=f"/v1/accounts/{OWN_ACCOUNT}/transfers",
    ),
    Call(
        "GET",
        "/v1/owners/{owner_kind}/{owner_id}/balances",
        LEDGER,
        url="/v1/owners/partner/pa/balances",
    ),
    Call("GET", "/v1/transfers/{transfer_id}", LEDGER, url="/v1/transfers/t-pa-1"),
    Call("GET", "/v1/quarantine/ledger-rejections", STAFF_AND_OPS_KEY),
    Call("GET", "/v1/quarantine/settlement-problems", STAFF_AND_OPS_KEY),
    Call(
        "POST",
        "/v1/quarantine/ledger-rejections/{transfer_id}/redrive",
        frozenset({"admin", "finance", "operations", "key_ops"}),
        url="/v1/quarantine/ledger-rejections/t-bad/redrive",
        body={},
    ),
    Call(
        "GET", "/v1/settlement/figures", STAFF_AND_OPS_KEY, url="/v1/settlement/figures?by=operator"
    ),
    Call("GET", "/v1/settlement/orphans", frozenset({"admin", "finance", "auditor"})),
    Call("GET", "/v1/settlement/commissions", LEDGER),
    Call("GET", "/v1/statements", STATEMENT_READERS),
    Call(
        "GET",
        "/v1/statements/{contract_id}/{operator}/{period}",
        STATEMENT_READERS,
        url="/v1/statements/c1/op1/2026-01",
    ),
    Call("GET", "/v1/contracts", STAFF_AND_OPS_KEY),
    Call("POST", "/v1/contracts", CONFIG_WRITERS, body={}),
    Call("GET", "/v1/partner-trees/{operator}", STAFF_AND_OPS_KEY, url="/v1/partner-trees/op1"),
    Call("POST", "/v1/partner-trees/agents", CONFIG_WRITERS, body={}),
    Call("POST", "/v1/partner-trees/placements", CONFIG_WRITERS, body={}),
    Call("GET", "/v1/fx/rates", STAFF_AND_OPS_KEY),
    Call("POST", "/v1/fx/rates", CONFIG_WRITERS, body=[]),
    Call("GET", "/v1/users", ADMIN_AND_AUDITOR),
    Call("POST", "/v1/users", ADMIN, body=_new_user),
    Call("GET", "/v1/users/{user_id}", ADMIN_AND_AUDITOR, url="/v1/users/{victim}"),
    Call("PATCH", "/v1/users/{user_id}", ADMIN, url="/v1/users/{victim}", body={"disabled": False}),
    Call("POST", "/v1/users/{user_id}/mfa-reset", ADMIN, url="/v1/users/{victim}/mfa-reset"),
    Call("POST", "/v1/users/{user_id}/unlock", ADMIN, url="/v1/users/{victim}/unlock"),
    Call("GET", "/v1/api-keys", ADMIN_AND_AUDITOR),
    Call("POST", "/v1/api-keys", ADMIN, body=_new_key),
    Call("DELETE", "/v1/api-keys/{key_id}", ADMIN, url="/v1/api-keys/{key}"),
    Call(
        "POST",
        "/v1/exports",
        frozenset({"admin", "finance", "auditor"}),
        body={"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
    ),
    Call("GET", "/v1/provider-secrets", ADMIN_AND_AUDITOR),
    Call(
        "PUT",
        "/v1/provider-secrets/{provider}/{name}",
        ADMIN,
        url="/v1/provider-secrets/acme/api_key",
        body={"value": "s3cr3t"},
    ),
    Call(
        "DELETE",
        "/v1/provider-secrets/{provider}/{name}",
        ADMIN,
        url="/v1/provider-secrets/acme/api_key",
    ),
    Call("GET", "/v1/quarantine/inputs", STAFF_AND_OPS_KEY),
    Call(
        "GET",
        "/v1/quarantine/inputs/{entry_id}",
        STAFF_AND_OPS_KEY,
        url="/v1/quarantine/inputs/1",
    ),
    Call(
        "POST",
        "/v1/quarantine/inputs/{entry_id}/redrive",
        REDRIVERS,
        url="/v1/quarantine/inputs/1/redrive",
    ),
    Call(
        "POST",
        "/v1/quarantine/inputs/{entry_id}/dismiss",
        REDRIVERS,
        url="/v1/quarantine/inputs/1/dismiss",
        body={"note": "looked at"},
    ),
    Call("POST", "/v1/feeds/{operator}/events", PUSHERS, url="/v1/feeds/op1/events", body=[]),
    Call("POST", "/v1/imports", PUSHERS, url="/v1/imports?provider=acme&name=r.csv", body=[]),
    Call(
        "POST",
        "/v1/reconciliation/runs",
        RECON_WRITERS,
        url="/v1/reconciliation/runs?provider=nobody&name=r.csv",
        body=[],
    ),
    Call("GET", "/v1/reconciliation/runs", RECON_READERS),
    Call("GET", "/v1/risk/forecasts", RISK_READERS),
    Call("GET", "/v1/reconciliation/runs/{run_id}", RECON_READERS, url="/v1/reconciliation/runs/1"),
    Call(
        "GET",
        "/v1/reconciliation/runs/{run_id}/report",
        RECON_READERS,
        url="/v1/reconciliation/runs/1/report",
    ),
    Call("GET", "/v1/reconciliation/breaks", RECON_READERS),
    Call(
        "GET",
        "/v1/reconciliation/breaks/{break_id}",
        RECON_READERS,
        url="/v1/reconciliation/breaks/1",
    ),
    Call(
        "POST",
        "/v1/reconciliation/breaks/{break_id}/assignment",
        RECON_WRITERS,
        url="/v1/reconciliation/breaks/1/assignment",
        body={"owner": "ana"},
    ),
    Call(
        "POST",
        "/v1/reconciliation/breaks/{break_id}/status",
        RECON_WRITERS,
        url="/v1/reconciliation/breaks/1/status",
        body={"status": "resolved", "note": "seen"},
    ),
    Call(
        "POST",
        "/v1/reconciliation/breaks/{break_id}/reopen",
        RECON_WRITERS,
        url="/v1/reconciliation/breaks/1/reopen",
        body={"note": "looked again"},
    ),
    Call(
        "POST",
        "/v1/reconciliation/breaks/{break_id}/redrive",
        RECON_WRITERS,
        url="/v1/reconciliation/breaks/1/redrive",
        body={"game_type": "slots"},
    ),
    Call(
        "PUT",
        "/v1/payouts/counterparties",
        PAYOUT_WRITERS,
        body={"kind": "partner", "party": "pa", "name": "PA", "rail": "internal", "account": "a"},
    ),
    Call("GET", "/v1/payouts/counterparties", PAYOUT_STAFF_READERS),
    Call("POST", "/v1/payouts/runs", PAYOUT_WRITERS, body={"scope": "all"}),
    Call("GET", "/v1/payouts/runs", PAYOUT_STAFF_READERS),
    Call("GET", "/v1/payouts/runs/{run_id}", PAYOUT_READERS, url="/v1/payouts/runs/run-x"),
    Call(
        "POST",
        "/v1/payouts/runs/{run_id}/approve",
        PAYOUT_WRITERS,
        url="/v1/payouts/runs/run-x/approve",
        body={"totp": "123456"},
    ),
    Call(
        "GET",
        "/v1/payouts/runs/{run_id}/payouts",
        PAYOUT_READERS,
        url="/v1/payouts/runs/run-x/payouts",
    ),
    Call("GET", "/v1/payouts/positions", PAYOUT_READERS),
    Call("GET", "/v1/alerts", ALERT_READERS),
    Call("GET", "/v1/alerts/{alert_id}", ALERT_READERS, url="/v1/alerts/1"),
    Call(
        "POST",
        "/v1/alerts/{alert_id}/acknowledgement",
        ADMIN,
        url="/v1/alerts/1/acknowledgement",
    ),
    Call("GET", "/v1/alerts/silences", ALERT_STAFF_READERS),
    Call("POST", "/v1/alerts/silences", ADMIN, body=_silence),
    Call(
        "POST",
        "/v1/alerts/silences/{silence_id}/expiry",
        ADMIN,
        url="/v1/alerts/silences/999/expiry",
    ),
    Call("GET", "/v1/alerts/rules", ALERT_STAFF_READERS),
    Call("PUT", "/v1/alerts/rules", ADMIN, body={}),
    Call("GET", "/v1/alerts/actions", ALERT_STAFF_READERS),
    Call(
        "POST",
        "/v1/alerts/actions/{action_id}/approval",
        ADMIN,
        url="/v1/alerts/actions/9/approval",
    ),
    Call(
        "POST",
        "/v1/alerts/actions/{action_id}/rejection",
        ADMIN,
        url="/v1/alerts/actions/9/rejection",
    ),
    Call("POST", "/v1/alerts/actions/{action_id}/undo", ADMIN, url="/v1/alerts/actions/9/undo"),
    Call("GET", "/v1/audit-records", ADMIN_AND_AUDITOR),
    Call("GET", "/v1/audit-records/verification", ADMIN_AND_AUDITOR),
]
DENIED_CODES = {"unauthenticated", "forbidden", "invalid_token", "mfa_enrolment_required"}


def test_the_matrix_covers_every_route_of_the_api(world: World):
    documented = {
        (method.upper(), path)
        for path, item in world.client.get("/openapi.json").json()["paths"].items()
        for method in item
    }
    assert documented == {(c.method, c.path) for c in CALLS}


def _headers(world: World, caller: str, fresh: bool) -> dict[str, str]:
    if caller == "anonymous":
        return {}
    if fresh and not caller.startswith("key_"):
        return {"Authorization": f"Bearer {world.login(caller)}"}
    return world.headers(caller)


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c.method} {c.path}")
def test_each_role_is_allowed_or_denied_as_the_policy_says(world: World, call: Call):
    outcomes: dict[str, tuple[int, str]] = {}
    for caller in CALLERS:
        url, body = call.concrete(world)
        headers = _headers(world, caller, call.fresh_session)
        response = world.client.request(call.method, url, headers=headers, json=body)
        assert response.status_code < 500, (caller, response.text)
        code = ""
        if response.headers.get("content-type", "").startswith("application/json"):
            payload = response.json()
            if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
                code = payload["error"]["code"]
        outcomes[caller] = (response.status_code, code)
    allowed = {c for c, (_, code) in outcomes.items() if code not in DENIED_CODES}
    assert allowed == call.allowed, outcomes
    for caller in EVERYONE - call.allowed:
        status, _ = outcomes[caller]
        assert status == (401 if caller == "anonymous" else 403), (caller, outcomes[caller])


def test_an_enrolment_only_session_may_do_nothing_but_enrol(world: World):
    world.bo.auth.reset_mfa("system", world.user_ids["finance"])
    world.totp_secrets.pop("finance")
    token = world.login("finance")
    headers = {"Authorization": f"Bearer {token}"}
    me = world.client.get("/v1/auth/me", headers=headers).json()
    assert me["stage"] == "mfa_enrolment"
    r = world.client.get(f"/v1/accounts/{OWN_ACCOUNT}", headers=headers)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "mfa_enrolment_required")
    assert world.client.post("/v1/auth/mfa/enrolment", headers=headers).status_code == 200
