"""Settlement configuration: contracts, partner trees, FX rates (versioned)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from tally.audit.service import Auditing
from tally.auth.model import Principal
from tally.entrypoints.api import schemas as s
from tally.entrypoints.api.deps import Ctx, require, source
from tally.entrypoints.api.errors import ERROR_RESPONSES, ApiError
from tally.entrypoints.api.routers.common import CONFLICT, CtxDep, DimValue, Id, P
from tally.settlement import codec
from tally.settlement.config import ConfigConflict, PutOutcome

router = APIRouter(prefix="/v1", tags=["settlement configuration"], responses=ERROR_RESPONSES)
ConfigReader = Annotated[Principal, Depends(require(P.CONFIG_READ))]
ConfigWriter = Annotated[Principal, Depends(require(P.CONFIG_WRITE))]
CREATED: dict[int | str, dict[str, Any]] = {
    201: {"model": s.ConfigPutOut, "description": "A new version was stored"}
}
# Bounds on a configuration document sent over HTTP.
DOC_MAX_DEPTH = 6
DOC_MAX_NODES = 5_000
FX_IMPORT_MAX_RATES = 10_000


def _check_doc(value: Any, depth: int = 0, budget: list[int] | None = None) -> None:
    """No control characters anywhere (PostgreSQL JSON refuses NUL), bounded size."""
    budget = budget if budget is not None else [DOC_MAX_NODES]
    budget[0] -= 1
    if depth > DOC_MAX_DEPTH or budget[0] < 0:
        raise ApiError(422, "document_too_large", "the document is too deep or too large")
    if isinstance(value, str):
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ApiError(422, "invalid_document", "control characters are not allowed")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_doc(k, depth + 1, budget)
            _check_doc(v, depth + 1, budget)
    elif isinstance(value, list):
        for v in value:
            _check_doc(v, depth + 1, budget)


def _auditing(c: Ctx, p: Principal, request: Request) -> Auditing:
    """The caller as the use case writes it on the audit trail, with its change."""
    return Auditing(c.bo.store, p.actor, source(request))


def _put_config(
    c: Ctx,
    p: Principal,
    request: Request,
    document: dict[str, Any],
    parse: Any,
    put: Any,
) -> Response:
    _check_doc(document)
    try:
        value = parse(document)
        outcome = put(value, c.app.clock.now(), by=_auditing(c, p, request))
    except ConfigConflict as exc:
        raise ApiError(409, "version_conflict", str(exc)) from None
    except ValueError as exc:  # ContractError and friends: the document is wrong
        raise ApiError(422, "invalid_document", str(exc)) from None
    body = s.ConfigPutOut(outcome=outcome.value).model_dump()
    return JSONResponse(body, status_code=201 if outcome is PutOutcome.CREATED else 200)


@router.get("/contracts", response_model=list[dict[str, Any]])
def list_contracts(c: CtxDep, _: ConfigReader, provider: DimValue = None) -> list[dict[str, Any]]:
    """Every version of every contract (optionally one provider's)."""
    return [codec.terms_to_dict(t) for t in c.app.settlement_config.contracts(provider)]


@router.post("/contracts", response_model=s.ConfigPutOut, responses={**CREATED, **CONFLICT})
def add_contract_version(
    document: dict[str, Any], request: Request, c: CtxDep, p: ConfigWriter
) -> Response:
    """Add a contract version (the same document again is a no-op). Audited."""
    cfg = c.app.settlement_config
    return _put_config(
        c,
        p,
        request,
        document,
        codec.terms_from_dict,
        cfg.put_contract,
    )


@router.get("/partner-trees/{operator}", response_model=s.PartnerTreeOut)
def get_partner_tree(operator: Id, c: CtxDep, _: ConfigReader) -> s.PartnerTreeOut:
    tree = c.app.settlement_config.partner_tree(operator)
    return s.PartnerTreeOut(
        agents=[codec.agent_to_dict(a) for a in tree.agents],
        placements=[codec.placement_to_dict(pl) for pl in tree.placements],
    )


@router.post(
    "/partner-trees/agents", response_model=s.ConfigPutOut, responses={**CREATED, **CONFLICT}
)
def add_agent_version(
    document: dict[str, Any], request: Request, c: CtxDep, p: ConfigWriter
) -> Response:
    """Add an agent (or a new version of its rates from an instant on). Audited."""
    cfg = c.app.settlement_config
    return _put_config(
        c,
        p,
        request,
        document,
        codec.agent_from_dict,
        cfg.put_agent,
    )


@router.post(
    "/partner-trees/placements", response_model=s.ConfigPutOut, responses={**CREATED, **CONFLICT}
)
def add_placement(
    document: dict[str, Any], request: Request, c: CtxDep, p: ConfigWriter
) -> Response:
    """Place (or move) an agent under a parent from an instant on. Audited."""
    cfg = c.app.settlement_config
    return _put_config(
        c,
        p,
        request,
        document,
        codec.placement_from_dict,
        cfg.put_placement,
    )


@router.get("/fx/rates", response_model=list[dict[str, Any]])
def list_fx_rates(c: CtxDep, _: ConfigReader) -> list[dict[str, Any]]:
    """Every FX rate as imported (base, quote, effective_at, rate, source)."""
    return [dict(d) for d in c.app.settlement_documents.all("fx_rate")]


@router.post("/fx/rates", response_model=s.FxImportOut)
def import_fx_rates(
    rates: list[dict[str, Any]], request: Request, c: CtxDep, p: ConfigWriter
) -> s.FxImportOut:
    """Import rates; an identical rate again is counted as existing, a different one conflicts."""
    if len(rates) > FX_IMPORT_MAX_RATES:
        raise ApiError(422, "document_too_large", f"at most {FX_IMPORT_MAX_RATES} rates at once")
    for r in rates:
        _check_doc(r)
    try:
        parsed = [codec.rate_from_dict(r) for r in rates]
        result = c.app.settlement_config.put_fx_rates(
            parsed, c.app.clock.now(), by=_auditing(c, p, request), origin="api"
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_document", str(exc)) from None
    return s.FxImportOut(
        created=result.created,
        existing=result.existing,
        conflicts=[codec.rate_to_dict(r) for r in result.conflicts],
    )
