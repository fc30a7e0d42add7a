"""Payouts over the API (embedded store): finance makes a run, a second finance user
approves it with a fresh TOTP code, the worker pays it through the internal rail, and a
partner sees only its own subtree."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tally.ledger.model import Account, OwnerKind, TransferRequest
from tally.payouts.service import PayoutWorker
from tally.security import totp
from tests.integration.apiworld import World
from tests.support.payouts import StaticPayables, payable

RUNS = "/v1/payouts/runs"


@pytest.fixture
def paying(world: World) -> World:
    if world.app.settings.mode != "embedded":
        pytest.skip(
            "the scaled run of this world needs JetStream; the store contract covers PostgreSQL"
        )
    items = [
        payable("com:pa", "partner:pa", "EUR", 20_000),
        payable("com:pb", "partner:pb", "EUR", 30_000),
    ]
    now = world.clock.now()
    expense = Account("operator:op1:expense:EUR", OwnerKind.OPERATOR, "op1", "EUR", "expense")
    accounts = [expense] + [
        Account(p.account_id, OwnerKind.PARTNER, p.counterparty[8:], "EUR", "commission_payable")
        for p in items
    ]
    accounts += [
        Account(f"partner:{x}:wallet:EUR", OwnerKind.PARTNER, x, "EUR", "wallet")
        for x in ("pa", "pb")
    ]
    world.app.ledger_store.create_accounts(accounts, now)
    world.app.ledger_store.apply(
        [
            [
                TransferRequest(
                    f"accrue:{p.id}", expense.id, p.account_id, p.amount, "EUR", "accrual"
                )
                for p in items
            ]
        ],
        now,
    )
    world.bo.payouts.payables = StaticPayables(items)
    world.bo.payouts.policy = type(world.bo.payouts.policy)(approval_above_default_minor=40_000)
    for party in ("pa", "pb"):
        r = world.client.put(
            "/v1/payouts/counterparties",
            headers=world.headers("finance"),
            json={"kind": "partner", "party": party, "name": party.upper(), "rail": "internal",
                  "account": f"partner:{party}:wallet:EUR"},
        )  # fmt: skip
        assert r.status_code == 200, r.text
    return world


def _code(world: World, who: str) -> str:
    world.clock.advance(timedelta(seconds=31))
    return totp.code_at(world.totp_secrets[who], world.clock.now())


def test_a_run_is_made_approved_by_another_user_with_a_fresh_code_and_paid(paying: World) -> None:
    w = paying
    r = w.client.post(RUNS, headers=w.headers("finance"), json={"scope": "all", "currency": "EUR"})
    assert r.status_code == 201, r.text
    run = r.json()
    assert (run["status"], run["totals"], run["maker"]) == (
        "awaiting_approval",
        {"EUR": "500.00"},
        f"user:{w.user_ids['finance']}",
    )
    run_id = run["id"]
    mine = w.client.post(
        f"{RUNS}/{run_id}/approve", headers=w.headers("finance"), json={"totp": _code(w, "finance")}
    )
    assert (mine.status_code, mine.json()["error"]["code"]) == (403, "maker_cannot_approve")
    wrong = w.client.post(
        f"{RUNS}/{run_id}/approve", headers=w.headers("admin"), json={"totp": "000000"}
    )
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "second_factor_refused")
    code = _code(w, "admin")
    ok = w.client.post(f"{RUNS}/{run_id}/approve", headers=w.headers("admin"), json={"totp": code})
    assert ok.status_code == 200, ok.text
    assert ok.json()["approver"] == f"user:{w.user_ids['admin']}"
    PayoutWorker(w.bo.payouts).drain()
    payouts = w.client.get(f"{RUNS}/{run_id}/payouts", headers=w.headers("auditor")).json()
    assert sorted((p["counterparty"], p["amount"], p["state"]) for p in payouts) == [
        ("partner:pa", "200.00", "confirmed"),
        ("partner:pb", "300.00", "confirmed"),
    ]
    assert w.app.ledger_store.balance("partner:pa:wallet:EUR").net_credit == 20_000
    actions = [r.entry.action for r in w.bo.store.iter_audit()]
    assert actions.count("payouts.run.created") == 1
    assert actions.count("payouts.run.approved") == 1
    assert actions.count("payouts.counterparty.set") == 2


def test_a_partner_sees_only_its_own_subtree(paying: World) -> None:
    w = paying
    w.bo.payouts.policy = type(w.bo.payouts.policy)()
    run_id = w.client.post(RUNS, headers=w.headers("finance"), json={}).json()["id"]
    seen = w.client.get(f"{RUNS}/{run_id}", headers=w.headers("partner")).json()
    assert [ln["counterparty"] for ln in seen["lines"]] == ["partner:pa"]
    assert seen["totals"] == {}
    payouts = w.client.get(f"{RUNS}/{run_id}/payouts", headers=w.headers("partner")).json()
    assert [p["counterparty"] for p in payouts] == ["partner:pa"]
    positions = w.client.get("/v1/payouts/positions", headers=w.headers("partner")).json()
    assert [(p["counterparty"], p["owed"], p["in_flight"]) for p in positions] == [
        ("partner:pa", "200.00", "200.00")
    ]
    assert w.client.get(RUNS, headers=w.headers("partner")).status_code == 403


def test_bad_input_is_refused_with_a_clear_error(paying: World) -> None:
    w = paying
    bad_rail = w.client.put(
        "/v1/payouts/counterparties",
        headers=w.headers("finance"),
        json={
            "kind": "partner",
            "party": "pc",
            "name": "PC",
            "rail": "carrier-pigeon",
            "account": "x",
        },
    )
    assert (bad_rail.status_code, bad_rail.json()["error"]["code"]) == (422, "unknown_rail")
    w.bo.payouts.payables.items.append(payable("com:zz", "partner:zz", "EUR", 5_000))  # type: ignore[attr-defined]
    r = w.client.post(RUNS, headers=w.headers("finance"), json={"scope": "all"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "unknown_counterparty")
    assert "partner:zz" in r.json()["error"]["message"]
    assert w.client.get(RUNS, headers=w.headers("finance")).json() == []
