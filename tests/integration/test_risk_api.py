"""GET /v1/risk/forecasts: the latest fit, filtered, for the risk role and staff, never
for partners."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tally.app.bootstrap import build_risk_store
from tally.auth.policy import Role
from tally.risk.watch_ports import ForecastPoint
from tests.integration.apiworld import World

URL = "/v1/risk/forecasts"
FIT = datetime(2026, 3, 2, 6, tzinfo=UTC)


def _seed(world: World) -> None:
    state = world.client.app.state  # type: ignore[attr-defined]
    store = getattr(state, "risk_store", None) or build_risk_store(world.app.settings)
    points = [
        ForecastPoint(series, FIT + timedelta(hours=h), 100.0 + h, 90.0, 110.0, 80.0, 120.0)
        for series in ("turnover|eu|p1|EUR", "players|eu|p1", "players|uk|p2")
        for h in range(168)
    ]
    store.replace(FIT, points)


def test_forecasts_are_served_by_horizon_and_filter_to_the_risk_role(world: World) -> None:
    _seed(world)
    _, key = world.bo.auth.create_api_key("system", "risk desk", frozenset({Role.RISK}))
    risk = {"Authorization": f"Bearer {key}"}
    r = world.client.get(f"{URL}?region=eu", headers=risk)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fitted_at"].startswith("2026-03-02T06:00") and body["horizon_hours"] == 24
    assert [s["series"] for s in body["series"]] == ["players|eu|p1", "turnover|eu|p1|EUR"]
    turnover = body["series"][1]
    assert turnover["currency"] == "EUR" and len(turnover["points"]) == 24
    first = turnover["points"][0]
    assert (first["mean"], first["lo80"], first["hi95"]) == (100.0, 90.0, 120.0)
    week = world.client.get(f"{URL}?metric=players&horizon=7d", headers=risk).json()
    assert [len(s["points"]) for s in week["series"]] == [168, 168]
    assert world.client.get(URL, headers=world.headers("auditor")).status_code == 200
    assert world.client.get(URL, headers=world.headers("partner")).status_code == 403
    assert world.client.get(URL).status_code == 401
    assert world.client.get(f"{URL}?metric=fees", headers=risk).status_code == 422
    assert world.client.get(f"{URL}?region=e%20u", headers=risk).status_code == 422
