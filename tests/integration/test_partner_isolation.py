"""A partner never sees another partner's (or anyone else's) data, whatever it guesses."""

from __future__ import annotations

import pytest

from tests.integration.apiworld import ACCOUNTS, World

# Partner A is agent "pa" in op1's tree, with "pa-sub" beneath it: it sees both.
MINE = {"pa", "pa-sub"}
OTHER_ACCOUNTS = [a.id for a in ACCOUNTS if a.owner_id not in MINE]
OTHER_TRANSFERS = ["t-pb-1", "t-op-1", "t-bad", "does-not-exist"]
OTHER_OWNERS = [
    ("partner", "pb"),
    ("operator", "op1"),
    ("platform", "platform"),
    ("partner", "PA"),
    ("partner", "pa "),
    ("player", "pa"),
]


NOT_FOUND = {"account_not_found", "transfer_not_found", "owner_not_found", "invalid_request"}


def _urls() -> list[str]:
    urls = []
    for account in [*OTHER_ACCOUNTS, "partner:pa:commission:EUR ", "partner:pa:missing:EUR"]:
        urls += [
            f"/v1/accounts/{account}",
            f"/v1/accounts/{account}/balance",
            f"/v1/accounts/{account}/transfers",
        ]
    urls += [f"/v1/transfers/{t}" for t in OTHER_TRANSFERS]
    urls += [f"/v1/owners/{kind}/{owner}/balances" for kind, owner in OTHER_OWNERS]
    return urls


@pytest.mark.parametrize("caller", ["partner", "key_partner"])
def test_a_partner_gets_not_found_for_everything_outside_its_scope(world: World, caller: str):
    for url in _urls():
        r = world.client.get(url, headers=world.headers(caller))
        assert r.status_code in (404, 422), (url, r.status_code, r.text)
        # Exactly the answer a non-existent identifier gets: an error, no data.
        assert list(r.json()) == ["error"], (url, r.text)
        assert r.json()["error"]["code"] in NOT_FOUND, (url, r.text)
        assert "987.65" not in r.text and "5.00" not in r.text


def test_partner_b_sees_its_own_and_not_partner_a(world: World):
    h = world.headers("partner_b")
    own = world.client.get("/v1/owners/partner/pb/balances", headers=h)
    assert [x["balance"]["credits_posted"] for x in own.json()] == ["987.65"]
    assert world.client.get("/v1/transfers/t-pa-1", headers=h).status_code == 404
    assert world.client.get("/v1/owners/partner/pa/balances", headers=h).status_code == 404


def test_a_partner_sees_its_own_transfers_and_balances(world: World):
    h = world.headers("partner")
    assert world.client.get("/v1/transfers/t-pa-1", headers=h).json()["amount"] == "12.34"
    page = world.client.get("/v1/accounts/partner:pa:commission:EUR/transfers", headers=h).json()
    assert [t["id"] for t in page["items"]] == ["t-pa-1"]


def test_a_partner_cannot_list_the_quarantine_users_keys_or_audit(world: World):
    for url in [
        "/v1/quarantine/ledger-rejections",
        "/v1/users",
        "/v1/api-keys",
        "/v1/audit-records",
    ]:
        assert world.client.get(url, headers=world.headers("partner")).status_code == 403


def test_a_partner_cannot_widen_its_own_scope(world: World):
    r = world.client.patch(
        f"/v1/users/{world.user_ids['partner']}",
        json={"scope": ["partner:pa", "partner:pb"]},
        headers=world.headers("partner"),
    )
    assert r.status_code == 403


def test_no_guessed_identifier_shows_a_partner_anything_outside_its_scope(world: World):
    from urllib.parse import quote

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    known = [a.id for a in ACCOUNTS] + ["t-pa-1", "t-pb-1", "t-op-1", "t-bad", "pb", "op1"]
    guesses = st.one_of(
        st.sampled_from(known),
        st.builds(lambda k, s: k + s, st.sampled_from(known), st.text(max_size=3)),
        st.text(min_size=1, max_size=40),
    )
    own = {
        (shape, account)
        for shape in ("account", "balance", "transfers")
        for account in ("partner:pa:commission:EUR", "partner:pa-sub:commission:EUR")
    } | {("transfer", "t-pa-1"), ("transfer", "t-pasub-1")}

    @given(guess=guesses, shape=st.sampled_from(["account", "balance", "transfers", "transfer"]))
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    def probe(guess: str, shape: str) -> None:
        quoted = quote(guess, safe="")
        url = {
            "account": f"/v1/accounts/{quoted}",
            "balance": f"/v1/accounts/{quoted}/balance",
            "transfers": f"/v1/accounts/{quoted}/transfers",
            "transfer": f"/v1/transfers/{quoted}",
        }[shape]
        r = world.client.get(url, headers=world.headers("partner"))
        if (shape, guess) in own:
            assert r.status_code == 200
        else:
            assert r.status_code in (404, 422), (url, r.status_code)
            assert "987.65" not in r.text

    probe()


def _scoped_user(world: World, name: str, scope: str) -> dict[str, str]:
    from tally.auth.model import OwnerRef
    from tally.auth.policy import Role
    from tests.integration.apiworld import PASSWORD

    world.bo.auth.create_user(
        "system",
        name,
        PASSWORD,
        frozenset({Role.PARTNER}),
        scope=frozenset({OwnerRef.parse(scope)}),
    )
    return {"Authorization": f"Bearer {world.login(name)}"}


def test_a_partner_sees_its_subtree_but_not_the_agents_above_it(world: World):
    sub = _scoped_user(world, "sub", "partner:pa-sub")
    assert world.client.get("/v1/transfers/t-pasub-1", headers=sub).status_code == 200
    assert world.client.get("/v1/transfers/t-pa-1", headers=sub).status_code == 404
    assert world.client.get("/v1/owners/partner/pa/balances", headers=sub).status_code == 404
    top = world.headers("partner")
    r = world.client.get("/v1/owners/partner/pa-sub/balances", headers=top)
    assert [x["balance"]["credits_posted"] for x in r.json()] == ["2.00"]


def test_an_operator_level_partner_sees_its_operator_and_every_agent_of_it(world: World):
    op = _scoped_user(world, "op1user", "operator:op1")
    for owner in ("operator/op1", "partner/pa", "partner/pa-sub"):
        r = world.client.get(f"/v1/owners/{owner}/balances", headers=op)
        assert r.status_code == 200, owner
    for owner in ("partner/pb", "operator/op2", "platform/platform"):
        assert world.client.get(f"/v1/owners/{owner}/balances", headers=op).status_code == 404
    assert world.client.get("/v1/transfers/t-pb-1", headers=op).status_code == 404
