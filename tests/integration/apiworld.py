"""Helpers of the API tests: a Tally with one user per role, an API client, seeded ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tally.app.bootstrap import App, Backoffice
from tally.app.keys import Keys
from tally.auth.model import OwnerRef
from tally.auth.policy import Role
from tally.kernel.clock import FixedClock
from tally.ledger.model import Account, OwnerKind, TransferRequest
from tally.security import totp
from tally.security.passwords import PasswordHasher
from tally.security.signing import new_private_key_pem

PASSWORD = "correct horse battery"
# Cheap Argon2 parameters: the tests check behaviour, not hashing cost.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
STAFF = (Role.ADMIN, Role.FINANCE, Role.OPERATIONS, Role.AUDITOR)
PARTNER_A = OwnerRef(OwnerKind.PARTNER, "pa")
PARTNER_B = OwnerRef(OwnerKind.PARTNER, "pb")
OPERATOR_OP1 = OwnerRef(OwnerKind.OPERATOR, "op1")
PROVIDER_ACME = OwnerRef(OwnerKind.PROVIDER, "acme")


def fixed_keys() -> Keys:
    return Keys(
        audit=b"A" * 32, pseudonym=b"P" * 32, secret=b"S" * 32, signing_pem=new_private_key_pem()
    )


@dataclass
class World:
    app: App
    bo: Backoffice
    client: TestClient
    clock: FixedClock
    user_ids: dict[str, str] = field(default_factory=dict)
    totp_secrets: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def login(self, name: str, password: str = PASSWORD) -> str:
        """A fresh session for ``name`` (a new TOTP step each time: codes are single-use)."""
        self.clock.advance(timedelta(seconds=31))
        body: dict[str, str] = {"username": name, "password": password}
        if name in self.totp_secrets:
            body["totp_code"] = totp.code_at(self.totp_secrets[name], self.clock.now())
        response = self.client.post("/v1/auth/login", json=body)
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who in self.tokens else {}


def enrol(world: World, name: str) -> None:
    """Enrol a TOTP secret for ``name`` through the API, as the user would."""
    world.clock.advance(timedelta(seconds=31))
    login = world.client.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert login.json()["stage"] == "mfa_enrolment"
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    secret = world.client.post("/v1/auth/mfa/enrolment", headers=headers).json()["secret"]
    code = totp.code_at(secret, world.clock.now())
    confirmed = world.client.post("/v1/auth/mfa/confirmation", headers=headers, json={"code": code})
    assert confirmed.status_code == 200, confirmed.text
    world.totp_secrets[name] = secret


ACCOUNTS = [
    Account("platform:cash:EUR", OwnerKind.PLATFORM, "platform", "EUR", "cash"),
    Account("partner:pa:commission:EUR", OwnerKind.PARTNER, "pa", "EUR", "commission"),
    Account("partner:pb:commission:EUR", OwnerKind.PARTNER, "pb", "EUR", "commission"),
    Account("partner:pa-sub:commission:EUR", OwnerKind.PARTNER, "pa-sub", "EUR", "commission"),
    Account("operator:op1:house:EUR", OwnerKind.OPERATOR, "op1", "EUR", "house"),
]


def seed_tree(app: App) -> None:
    """Partner trees: op1 has pa with pa-sub beneath it; op2 has pb."""
    from decimal import Decimal

    from tally.adapters.memory.backoffice import scratch_auditing
    from tally.settlement.partners import Agent, Placement

    now = app.clock.now()
    config = app.settlement_config
    by = scratch_auditing("system:test", "test")  # set-up, not on the world's trail
    for agent, operator in (("pa", "op1"), ("pa-sub", "op1"), ("pb", "op2")):
        config.put_agent(Agent(agent, operator, Decimal("0.01"), Decimal("0.1")), now, by=by)
    epoch = datetime(2020, 1, 1, tzinfo=UTC)
    config.put_placement(Placement("pa", None, epoch), now, by=by)
    config.put_placement(Placement("pa-sub", "pa", epoch), now, by=by)
    config.put_placement(Placement("pb", None, epoch), now, by=by)


def seed_ledger(app: App) -> None:
    seed_tree(app)
    app.ledger.create_accounts(ACCOUNTS)
    results = app.ledger.transfer(
        [
            TransferRequest(
                "t-pa-1",
                "platform:cash:EUR",
                "partner:pa:commission:EUR",
                1234,
                "EUR",
                "commission",
            ),
            TransferRequest(
                "t-pb-1",
                "platform:cash:EUR",
                "partner:pb:commission:EUR",
                98765,
                "EUR",
                "commission",
            ),
            TransferRequest(
                "t-pasub-1",
                "platform:cash:EUR",
                "partner:pa-sub:commission:EUR",
                200,
                "EUR",
                "commission",
            ),
            TransferRequest(
                "t-pasub-1",
                "platform:cash:EUR",
                "partner:pa-sub:commission:EUR",
                200,
                "EUR",
                "commission",
            ),
            TransferRequest(
                "t-op-1", "platform:cash:EUR", "operator:op1:house:EUR", 500, "EUR", "settlement"
            ),
        ]
    )
    assert all(r.code.ok for r in results)
    refused = app.ledger.transfer(
        [TransferRequest("t-bad", "platform:cash:EUR", "nowhere", 1, "EUR", "commission")]
    )
    assert not refused[0].code.ok
