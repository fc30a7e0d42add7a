"""Live figures, commissions and statements over the API, partners kept to their own."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tally.settlement.contracts import Totals
from tally.settlement.engine import Bucket, OpenFigures, WaitingRollback
from tally.settlement.ports import Orphan, StoredStatement
from tests.integration.apiworld import World

CLOSED = datetime(2026, 2, 1, tzinfo=UTC)


@dataclass
class FakeSettlement:
    """Stands in for the settlement store: figures and statements as settlement leaves them."""

    figures: Any
    closed: list[StoredStatement] = field(default_factory=list)

    def load_figures(self) -> Any:
        return self.figures

    def statements(self) -> list[StoredStatement]:
        return self.closed

    def problems(self) -> list[tuple[str, str, datetime]]:
        return [("acme:evt-9", "no contract in force for acme at 2026-01-03", CLOSED)]

    def orphans(self) -> list[Orphan]:
        january = datetime(2026, 1, 20, 9, 30, tzinfo=UTC)
        return [
            # Its period (January) closed while it waited.
            Orphan(
                WaitingRollback(
                    "acme:w404:*",
                    "acme:rb1:rollback",
                    january,
                    "op1",
                    "EUR",
                    "c1",
                    "2026-01",
                    datetime(2026, 1, 1, tzinfo=UTC),
                ),
                outlived_close=True,
            ),
            Orphan(
                WaitingRollback(
                    "acme:w405:*",
                    "acme:rb2:rollback",
                    CLOSED,
                    "op1",
                    "EUR",
                    "c1",
                    "2026-02",
                    CLOSED,
                ),
                outlived_close=False,
            ),
            # Kept before the rollback's instant and period were recorded.
            Orphan(WaitingRollback("acme:w1:*", "acme:rb0:rollback"), outlived_close=None),
        ]

    def close(self) -> None:
        """Nothing held: nothing to release."""


def _install(world: World) -> None:
    figures = OpenFigures()
    figures.totals[Bucket("c1", 1, "acme", "op1", "2026-02", "slots", "EUR", "eu")] = Totals(
        turnover=10_000, wins=7_000, bonuses=500
    )
    figures.totals[Bucket("c1", 1, "acme", "op2", "2026-02", "slots", "EUR", "eu")] = Totals(
        turnover=5_000, wins=1_000
    )
    figures.commission_accrued[("op1", "pa", "2026-02", "EUR")] = 123
    figures.commission_accrued[("op1", "pa-sub", "2026-02", "EUR")] = 45
    figures.commission_accrued[("op2", "pb", "2026-02", "EUR")] = 999
    statements = [
        StoredStatement(
            "c1",
            op,
            "2026-01",
            f"sha-{op}",
            f'{{"operator":"{op}"}}'.encode(),
            f"operator\\n{op}\\n".encode(),
            CLOSED,
        )
        for op in ("op1", "op2")
    ]
    # The app closes only the store it holds at the end: close the real one it replaces
    # (on PostgreSQL an open connection otherwise leaks and warns when collected).
    world.app.settlement_store.close()
    world.app.settlement_store = FakeSettlement(figures, statements)  # type: ignore[assignment]


def test_live_figures_are_grouped_as_asked_with_amounts_as_strings(world: World):
    _install(world)
    r = world.client.get("/v1/settlement/figures?by=operator", headers=world.headers("operations"))
    assert r.status_code == 200, r.text
    rows = {row["key"]["operator"]: row for row in r.json()}
    assert rows["op1"]["turnover"] == "100.00" and rows["op1"]["ggr"] == "30.00"
    assert rows["op1"]["ngr"] == "25.00" and rows["op1"]["currency"] == "EUR"
    only = world.client.get(
        "/v1/settlement/figures?operator=op2", headers=world.headers("auditor")
    ).json()
    assert [row["turnover"] for row in only] == ["50.00"]


def test_a_partner_sees_the_commissions_of_its_subtree_only(world: World):
    _install(world)
    mine = world.client.get("/v1/settlement/commissions", headers=world.headers("partner")).json()
    assert sorted((x["key"]["agent"], x["accrued"]) for x in mine) == [
        ("pa", "1.23"),
        ("pa-sub", "0.45"),
    ]
    theirs = world.client.get(
        "/v1/settlement/commissions?agent=pb", headers=world.headers("partner")
    ).json()
    assert theirs == []
    staff = world.client.get("/v1/settlement/commissions", headers=world.headers("finance"))
    assert len(staff.json()) == 3


def test_statements_are_listed_and_downloaded_with_their_digest(world: World):
    _install(world)
    h = world.headers("finance")
    listed = world.client.get("/v1/statements", headers=h).json()
    assert [(x["operator"], x["sha256"]) for x in listed] == [
        ("op1", "sha-op1"),
        ("op2", "sha-op2"),
    ]
    doc = world.client.get("/v1/statements/c1/op1/2026-01", headers=h)
    assert doc.json() == {"operator": "op1"} and doc.headers["x-statement-sha256"] == "sha-op1"
    csv = world.client.get("/v1/statements/c1/op1/2026-01?format=csv", headers=h)
    assert csv.headers["content-type"].startswith("text/csv")


def test_a_partner_gets_only_its_own_operators_statements(world: World):
    _install(world)
    from tally.auth.model import OwnerRef
    from tally.auth.policy import Role
    from tests.integration.apiworld import PASSWORD

    world.bo.auth.create_user(
        "system",
        "op1p",
        PASSWORD,
        frozenset({Role.PARTNER}),
        scope=frozenset({OwnerRef.parse("operator:op1")}),
    )
    h = {"Authorization": f"Bearer {world.login('op1p')}"}
    listed = world.client.get("/v1/statements", headers=h).json()
    assert [x["operator"] for x in listed] == ["op1"]
    assert world.client.get("/v1/statements/c1/op2/2026-01", headers=h).status_code == 404
    assert world.client.get("/v1/statements/c1/op1/2026-01", headers=h).status_code == 200
    # An agent-level partner is not the operator: no provider statements for it.
    agent = world.client.get("/v1/statements", headers=world.headers("partner")).json()
    assert agent == []


def test_a_regulator_export_carries_the_statements_closed_in_its_period(world: World):
    import io
    import json
    import zipfile

    _install(world)
    period = {"start": "2026-01-15T00:00:00Z", "end": "2026-03-01T00:00:00Z"}
    r = world.client.post(
        "/v1/exports", json={**period, "owner": "operator:op1"}, headers=world.headers("auditor")
    )
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    index = json.loads(archive.read("statements.json"))
    assert [(x["operator"], x["sha256"]) for x in index] == [("op1", "sha-op1")]
    assert archive.read(index[0]["json"]) == b'{"operator":"op1"}'
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["counts"]["statements"] == 1
    before = {"start": "2025-12-01T00:00:00Z", "end": "2026-01-15T00:00:00Z"}
    r = world.client.post("/v1/exports", json=before, headers=world.headers("auditor"))
    assert json.loads(zipfile.ZipFile(io.BytesIO(r.content)).read("statements.json")) == []


def test_events_settlement_could_not_place_are_shown_in_the_quarantine(world: World):
    _install(world)
    r = world.client.get("/v1/quarantine/settlement-problems", headers=world.headers("operations"))
    assert r.json() == [
        {
            "event_key": "acme:evt-9",
            "reason": "no contract in force for acme at 2026-01-03",
            "at": "2026-02-01T00:00:00Z",
        }
    ]


OUTLIVED = {
    "ref": "acme:w404:*",
    "rollback_key": "acme:rb1:rollback",
    "occurred_at": "2026-01-20T09:30:00Z",
    "operator": "op1",
    "currency": "EUR",
    "contract_id": "c1",
    "period": "2026-01",
    "outlived_close": True,
}
WAITING = {
    **OUTLIVED,
    "ref": "acme:w405:*",
    "rollback_key": "acme:rb2:rollback",
    "occurred_at": "2026-02-01T00:00:00Z",
    "period": "2026-02",
    "outlived_close": False,
}
UNKNOWN = {
    "ref": "acme:w1:*",
    "rollback_key": "acme:rb0:rollback",
    "occurred_at": None,
    "operator": None,
    "currency": None,
    "contract_id": None,
    "period": None,
    "outlived_close": None,
}


def test_rollbacks_waiting_for_their_original_are_listed_for_finance_and_auditors(world: World):
    _install(world)
    for role in ("finance", "auditor"):
        r = world.client.get("/v1/settlement/orphans", headers=world.headers(role))
        assert r.status_code == 200, (role, r.text)
        assert r.json() == [OUTLIVED, WAITING, UNKNOWN]
    r = world.client.get(
        "/v1/settlement/orphans", params={"past_close": "true"}, headers=world.headers("finance")
    )
    assert r.json() == [OUTLIVED]
    r = world.client.get("/v1/settlement/orphans", headers=world.headers("partner"))
    assert r.status_code == 403
