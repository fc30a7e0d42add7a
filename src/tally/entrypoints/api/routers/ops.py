"""Operations: health, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from tally.auth.model import Principal
from tally.entrypoints.api import schemas as s
from tally.entrypoints.api.deps import require
from tally.entrypoints.api.errors import ERROR_RESPONSES, ErrorBody
from tally.entrypoints.api.routers.common import CtxDep, P

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=s.StatusOut)
def health() -> s.StatusOut:
    """The process is up (no dependencies checked)."""
    return s.StatusOut(status="ok")


@router.get(
    "/ready",
    response_model=s.StatusOut,
    responses={503: {"model": ErrorBody, "description": "A store is not reachable"}},
)
def ready(c: CtxDep) -> Any:
    """The ledger and back-office stores answer."""
    try:
        c.app.ledger.account("__readiness_probe__")
        c.bo.store.ping()
    except Exception:  # noqa: BLE001 - any failure means not ready
        return JSONResponse(
            {"error": {"code": "not_ready", "message": "a store is not reachable"}}, 503
        )
    return s.StatusOut(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **ERROR_RESPONSES},
)
def metrics(c: CtxDep, _: Annotated[Principal, Depends(require(P.METRICS_READ))]) -> Response:
    """Prometheus metrics: requests and latency by route, ledger commit latency."""
    return Response(c.bo.metrics.render(), media_type="text/plain; version=0.0.4")
