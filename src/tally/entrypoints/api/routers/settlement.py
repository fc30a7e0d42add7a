"""Settlement: live figures, commissions, orphan rollbacks, statements."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from tally.auth.model import OwnerRef, Principal
from tally.auth.scope import may_see_owner
from tally.entrypoints.api import schemas as s
from tally.entrypoints.api.deps import Ctx, require
from tally.entrypoints.api.errors import ERROR_RESPONSES, ApiError
from tally.entrypoints.api.routers.common import CtxDep, DimValue, Id, P
from tally.kernel.currency import is_known
from tally.kernel.money import format_amount
from tally.ledger.model import OwnerKind
from tally.settlement.figures import Dimension, commissions_accrued, live_totals
from tally.settlement.ports import StoredStatement

router = APIRouter(prefix="/v1", tags=["settlement"], responses=ERROR_RESPONSES)


def _amount(minor: int, currency: str) -> str:
    return format_amount(minor, currency) if is_known(currency) else str(minor)


@router.get("/settlement/figures", response_model=list[s.FiguresRowOut])
def settlement_figures(
    c: CtxDep,
    _: Annotated[Principal, Depends(require(P.SETTLEMENT_FIGURES_READ))],
    by: Annotated[list[Dimension] | None, Query(max_length=7)] = None,
    provider: DimValue = None,
    operator: DimValue = None,
    period: DimValue = None,
) -> list[s.FiguresRowOut]:
    """Live totals of the open periods (turnover, wins, GGR, NGR), grouped as asked."""
    where = {
        d: v
        for d, v in (
            (Dimension.PROVIDER, provider),
            (Dimension.OPERATOR, operator),
            (Dimension.PERIOD, period),
        )
        if v is not None
    }
    rows = live_totals(c.app.settlement_store.load_figures(), by or [], where)
    out = []
    for row in rows:
        key = dict(row.key)
        cur = key.get("currency", "")
        t = row.totals
        out.append(
            s.FiguresRowOut(
                key=key,
                currency=cur,
                turnover=_amount(t.turnover, cur),
                wins=_amount(t.wins, cur),
                ggr=_amount(t.ggr, cur),
                bonuses=_amount(t.bonuses, cur),
                jackpot_contributions=_amount(t.jackpot_contributions, cur),
                ngr=_amount(row.ngr, cur),
            )
        )
    return out


@router.get("/settlement/commissions", response_model=list[s.AccrualOut])
def settlement_commissions(
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.COMMISSIONS_READ))],
    agent: DimValue = None,
    operator: DimValue = None,
) -> list[s.AccrualOut]:
    """Partner commission accrued in the open periods; a partner sees its subtree only."""
    visible = c.bo.scope.visible_owners(p)
    rows = commissions_accrued(
        c.app.settlement_store.load_figures(), agent=agent, operator=operator
    )
    out = []
    for row in rows:
        key = dict(row.key)
        if not may_see_owner(visible, OwnerRef(OwnerKind.PARTNER, key["agent"])):
            continue
        out.append(
            s.AccrualOut(
                key=key, currency=key["currency"], accrued=_amount(row.accrued, key["currency"])
            )
        )
    return out


def _visible_statements(c: Ctx, p: Principal) -> list[StoredStatement]:
    visible = c.bo.scope.visible_owners(p)
    return [
        st
        for st in c.app.settlement_store.statements()
        if may_see_owner(visible, OwnerRef(OwnerKind.OPERATOR, st.operator))
    ]


@router.get("/settlement/orphans", response_model=list[s.OrphanOut])
def settlement_orphans(
    c: CtxDep,
    _: Annotated[Principal, Depends(require(P.SETTLEMENT_ORPHANS_READ))],
    past_close: bool = False,
) -> list[s.OrphanOut]:
    """Rollbacks still waiting for their original, with the period each falls in. One
    still here after its period closed (``outlived_close``) voided nothing in it: its
    original never came, or came under another key. ``past_close=true`` lists only those
    (not those whose period is unknown)."""
    return [
        s.OrphanOut(
            ref=w.ref,
            rollback_key=w.key,
            occurred_at=w.occurred_at,
            operator=w.operator,
            currency=w.currency,
            contract_id=w.contract_id,
            period=w.period,
            outlived_close=o.outlived_close,
        )
        for o in c.app.settlement_store.orphans()
        if o.outlived_close or not past_close
        for w in (o.waiting,)
    ]


@router.get("/statements", response_model=list[s.StatementOut])
def list_statements(
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.STATEMENTS_READ))],
    operator: DimValue = None,
    period: DimValue = None,
) -> list[s.StatementOut]:
    """Closed-period statements; a partner sees its own operator's only."""
    return [
        s.StatementOut(
            contract_id=st.contract_id,
            operator=st.operator,
            period=st.period,
            sha256=st.sha256,
            closed_at=st.closed_at,
        )
        for st in _visible_statements(c, p)
        if (operator is None or st.operator == operator) and (period is None or st.period == period)
    ]


@router.get(
    "/statements/{contract_id}/{operator}/{period}",
    response_class=Response,
    responses={
        200: {
            "description": "The frozen statement (JSON, or CSV with ?format=csv)",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
def download_statement(
    contract_id: Id,
    operator: Id,
    period: Id,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.STATEMENTS_READ))],
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    """Download a statement exactly as it was frozen at close (its SHA-256 in a header)."""
    for st in _visible_statements(c, p):
        if (st.contract_id, st.operator, st.period) == (contract_id, operator, period):
            body, media = (
                (st.csv, "text/csv") if format == "csv" else (st.document, "application/json")
            )
            return Response(body, media_type=media, headers={"X-Statement-SHA256": st.sha256})
    raise ApiError(404, "statement_not_found", "no such statement")
