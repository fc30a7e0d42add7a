"""Risk forecasts: each region's and provider's hourly turnover, GGR, active players and
bets for the next 24 hours or 7 days, with 80% and 95% intervals.

Staff with ``risk.forecasts.read`` (the risk role, finance, operations, auditors). The
forecasts are refit by ``tally risk forecast`` on a schedule; this router only reads the
latest fit.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from tally.app.bootstrap import build_risk_store
from tally.auth.model import Principal
from tally.entrypoints.api.deps import require
from tally.entrypoints.api.errors import ERROR_RESPONSES
from tally.entrypoints.api.routers.common import CtxDep, P
from tally.risk.watch_ports import ForecastPoint, RiskStore

router = APIRouter(prefix="/v1/risk", tags=["risk"], responses=ERROR_RESPONSES)

Dim = Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9._-]*$")]
SERIES_MAX = 500  # series in one answer: the largest deployment's regions x providers x 4
_lock = threading.Lock()


class PointOut(BaseModel):
    hour: datetime = Field(description="the hour's start, UTC")
    mean: float
    lo80: float
    hi80: float
    lo95: float
    hi95: float


class SeriesOut(BaseModel):
    series: str = Field(description="metric|region|provider[|currency]")
    metric: str
    region: str
    provider: str
    currency: str = Field(description="for turnover and GGR; empty for counts")
    points: list[PointOut]


class ForecastsOut(BaseModel):
    fitted_at: datetime | None = Field(description="when the latest refit ran (null: never)")
    horizon_hours: int
    series: list[SeriesOut]


def _store(request: Request, c: CtxDep) -> RiskStore:
    """The deployment's risk store, opened once per API process."""
    with _lock:
        found: RiskStore | None = getattr(request.app.state, "risk_store", None)
        if found is None:
            found = request.app.state.risk_store = build_risk_store(c.app.settings)
        return found


@router.get("/forecasts", response_model=ForecastsOut)
def forecasts(
    store: Annotated[RiskStore, Depends(_store)],
    _: Annotated[Principal, Depends(require(P.RISK_FORECASTS_READ))],
    metric: Annotated[
        Literal["", "turnover", "ggr", "players", "bets"], Query(description="all when empty")
    ] = "",
    region: Dim = "",
    provider: Dim = "",
    horizon: Annotated[Literal["24h", "7d"], Query(description="the next day or week")] = "24h",
) -> ForecastsOut:
    """The latest forecasts, one series per metric, region and provider."""
    hours = 24 if horizon == "24h" else 168
    fitted_at, points = store.latest(
        metric=metric, region=region, provider=provider, limit=SERIES_MAX * 168
    )
    by_series: dict[str, list[ForecastPoint]] = {}
    for p in points:
        by_series.setdefault(p.series, []).append(p)
    out = []
    for name, found in sorted(by_series.items())[:SERIES_MAX]:
        parts = name.split("|")
        out.append(
            SeriesOut(
                series=name,
                metric=parts[0],
                region=parts[1],
                provider=parts[2],
                currency=parts[3] if len(parts) > 3 else "",
                points=[
                    PointOut(
                        hour=p.hour, mean=p.mean, lo80=p.lo80, hi80=p.hi80, lo95=p.lo95, hi95=p.hi95
                    )
                    for p in sorted(found, key=lambda p: p.hour)[:hours]
                ],
            )
        )
    return ForecastsOut(fitted_at=fitted_at, horizon_hours=hours, series=out)
