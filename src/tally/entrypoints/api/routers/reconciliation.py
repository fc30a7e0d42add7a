"""Reconciliation: providers' reports run against what Tally recorded, and the breaks.

Staff only (``reconciliation.read`` / ``reconciliation.write``): a break names other
operators' transactions and the provider's own figures, so partners see none of it. The
use cases write the audit records, in the change's own transaction; this router only
translates.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from tally.audit.service import Auditing
from tally.auth.model import Principal
from tally.entrypoints.api import schemas as s
from tally.entrypoints.api.deps import Ctx, require
from tally.entrypoints.api.deps import source as client_address
from tally.entrypoints.api.errors import ERROR_RESPONSES, ApiError
from tally.entrypoints.api.routers.common import CONFLICT, CtxDep, Cursor, Limit, P
from tally.kernel.limits import ApiLimits
from tally.kernel.money import format_amount
from tally.kernel.page import InvalidCursor
from tally.reconciliation.model import BreakKind, BreakStatus, KeptBreak, Transition
from tally.reconciliation.ports import Run
from tally.reconciliation.service import ReportRefused

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"], responses=ERROR_RESPONSES)

RUN_MAX_BYTES = ApiLimits().reconciliation_body_max_bytes
Provider = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
RunId = Annotated[int, Path(ge=1, le=2**62)]
BreakId = Annotated[int, Path(ge=1, le=2**62)]
KindName = Literal[
    "missing_in_tally", "missing_in_report", "duplicate_in_report", "currency_mismatch",
    "rollback_mismatch", "amount_mismatch", "fx_rounding", "timing",
]  # fmt: skip
KINDS = {k.code: k for k in BreakKind}
Note = Annotated[str, Field(max_length=2_000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")]


class RunOut(BaseModel):
    id: int
    provider: str
    name: str = Field(description="the report file's name")
    file_sha256: str = Field(description="the file's own hash: the same file is run once")
    rules: dict[str, object] = Field(description="the match rules the run used")
    started_at: datetime
    status: str = Field(description="reading or done")
    lines: int
    refused: int = Field(description="lines refused (kept in the input quarantine)")
    breaks: int
    json_sha256: str = Field(description="SHA-256 of the break report (JSON)")
    csv_sha256: str = Field(description="SHA-256 of the break report (CSV)")

    @classmethod
    def of(cls, r: Run) -> RunOut:
        return cls(
            id=r.id, provider=r.provider, name=r.name, file_sha256=r.file_sha256,
            rules=r.rules.to_dict(), started_at=r.started_at, status=r.status, lines=r.lines,
            refused=r.refused, breaks=r.breaks, json_sha256=r.json_sha256,
            csv_sha256=r.csv_sha256,
        )  # fmt: skip


class RunResultOut(BaseModel):
    run: RunOut
    refused_lines: list[str] = Field(description="the first refused lines: file, line, why")
    unexplained_rows: int = Field(description="balance rows no break explains")


class RunPageOut(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


class HistoryOut(BaseModel):
    status: BreakStatus
    owner: str
    by: str
    at: datetime
    note: str


class BreakOut(BaseModel):
    id: int
    run_id: int
    kind: KindName
    provider: str
    operator: str
    currency: str
    day: date
    tally_day: date | None
    report_ref: str = Field(description="tx_id:kind of the report line(s)")
    tally_key: str = Field(description="idempotency key(s) of Tally's line(s)")
    report_amount: str
    tally_amount: str
    difference: str = Field(description="report minus Tally (GGR)")
    source: str = Field(description="file:line of the report line, where one named it")
    found_at: datetime
    age_days: int
    status: BreakStatus
    owner: str
    adjustment: str = Field(
        description="the ledger transfer a rule posted for it (recon:fx:<id>, or its "
        "reversal once reopened); empty if none"
    )
    history: list[HistoryOut]

    @classmethod
    def of(cls, k: KeptBreak, now: datetime) -> BreakOut:
        b, cur = k.brk, k.brk.currency
        return cls(
            id=k.id, run_id=k.run_id, kind=b.kind.code, provider=b.provider,  # type: ignore[arg-type]
            operator=b.operator, currency=cur, day=b.day, tally_day=b.tally_day,
            report_ref=b.report_ref, tally_key=b.tally_key,
            report_amount=format_amount(b.report_amount, cur),
            tally_amount=format_amount(b.tally_amount, cur),
            difference=format_amount(b.difference, cur), source=k.source,
            found_at=k.found_at, age_days=k.age_days(now), status=k.status, owner=k.owner,
            adjustment=k.adjustment,
            history=[
                HistoryOut(status=h.status, owner=h.owner, by=h.by, at=h.at, note=h.note)
                for h in k.history
            ],
        )  # fmt: skip


class BreakPageOut(BaseModel):
    items: list[BreakOut]
    next_cursor: str | None


class AssignIn(BaseModel):
    owner: Annotated[str, Field(min_length=1, max_length=200, pattern=s.PRINTABLE)]
    note: Note = ""


class StatusIn(BaseModel):
    status: Literal["investigating", "resolved", "written_off"]
    note: Note = Field(default="", description="why: required to resolve or write off")


class NoteIn(BaseModel):
    note: Note = Field(min_length=1, description="why (kept in the break's history and audit)")


class RedriveIn(BaseModel):
    game_type: Annotated[str, Field(min_length=1, max_length=200, pattern=s.PRINTABLE)] = Field(
        description="the line's game type (a provider's report does not say)"
    )
    note: Note = ""


class RedriveOut(BaseModel):
    event_key: str = Field(description="the re-driven event's idempotency key")
    appended: str = Field(description="accepted, or duplicate when it was logged before")
    break_: BreakOut = Field(alias="break")


def _auditing(c: Ctx, p: Principal, request: Request) -> Auditing:
    return Auditing(c.bo.store, p.actor, client_address(request))


_REFUSED = {
    Transition.NOT_FOUND: (404, "break_not_found", "no break {id}"),
    Transition.CLOSED: (409, "break_closed", "break {id} is resolved or written off"),
    Transition.NOT_ALLOWED: (409, "break_not_allowed", "break {id} cannot move so now"),
    Transition.NOTE_REQUIRED: (422, "note_required", "closing a break says why: a note"),
}


def _answer(c: Ctx, break_id: int, verdict: Transition) -> BreakOut:
    if verdict is not Transition.OK:
        status, code, message = _REFUSED[verdict]
        raise ApiError(status, code, message.format(id=break_id))
    service = c.bo.reconciliation
    kept = service.get(break_id)
    assert kept is not None
    return BreakOut.of(kept, service.clock.now())


@router.post(
    "/runs",
    response_model=RunResultOut,
    status_code=201,
    responses=CONFLICT,
)
async def run_report(
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.RECONCILIATION_WRITE))],
    provider: Provider,
    name: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")],
    tz: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$")] = None,
) -> RunResultOut:
    """Reconcile one provider report, sent as the body (CSV with a header, or JSON Lines
    when ``name`` ends in .jsonl). ``tz`` overrides the provider's rules' zone for this run.
    The same file twice is refused (409); a refused file leaves no run behind (422)."""
    body = await request.body()  # the edge has held it to the route's limit already
    if len(body) > RUN_MAX_BYTES:
        raise ApiError(413, "payload_too_large", f"a report here is at most {RUN_MAX_BYTES} bytes")
    service = c.bo.reconciliation
    try:
        out = service.run(name, body, provider, _auditing(c, p, request), tz)
    except ReportRefused as exc:
        conflict = "reconciled before" in str(exc)
        raise ApiError(
            409 if conflict else 422, "report_taken" if conflict else "report_refused", str(exc)
        ) from None
    return RunResultOut(
        run=RunOut.of(out.run),
        refused_lines=list(out.refused_lines[:100]),
        unexplained_rows=sum(1 for b in out.result.balances if b.unexplained),
    )


@router.get("/runs", response_model=RunPageOut)
def list_runs(
    c: CtxDep,
    _: Annotated[Principal, Depends(require(P.RECONCILIATION_READ))],
    provider: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._-]+$")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> RunPageOut:
    """Runs, oldest first."""
    try:
        page = c.bo.reconciliation.run_page(provider=provider, cursor=cursor, limit=limit)
    except InvalidCursor as exc:
        raise ApiError(422, "invalid_cursor", str(exc)) from None
    return RunPageOut(items=[RunOut.of(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(
    run_id: RunId,
    c: CtxDep,
    _: Annotated[Principal, Depends(require(P.RECONCILIATION_READ))],
) -> RunOut:
    run = c.bo.reconciliation.get_run(run_id)
    if run is None:
        raise ApiError(404, "run_not_found", f"no run {run_id}")
    return RunOut.of(run)


@router.get(
    "/runs/{run_id}/report",
    response_class=Response,
    responses={
        200: {
            "description": "The break report as kept (JSON, or CSV with ?format=csv)",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
def run_report_document(
    run_id: RunId,
    c: CtxDep,
    _: Annotated[Principal, Depends(require(P.RECONCILIATION_READ))],
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    """A finished run's break report byte for byte as kept, its SHA-256 in a header."""
    found = c.bo.reconciliation.report(run_id, format)
    if found is None:
        raise ApiError(404, "run_not_found", f"no finished run {run_id}")
    body, sha = found
    media = "text/csv" if format == "csv" else "application/json"
    return Response(body, media_type=media, headers={"X-Report-SHA256": sha})


@router.get("/breaks", response_model=BreakPageOut)
def list_breaks(
    c: CtxDep,
    _: Annotated[Principal, Depends(require(P.RECONCILIATION_READ))],
    status: BreakStatus | None = None,
    kind: KindName | None = None,
    provider: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._-]+$")] = None,
    run: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> BreakPageOut:
    """Breaks by id, filtered by status, kind, provider or run."""
    service = c.bo.reconciliation
    try:
        page = service.break_page(
            status=status, kind=KINDS[kind] if kind else None, provider=provider, run_id=run,
            cursor=cursor, limit=limit,
        )  # fmt: skip
    except InvalidCursor as exc:
        raise ApiError(422, "invalid_cursor", str(exc)) from None
    now = service.clock.now()
    return BreakPageOut(
        items=[BreakOut.of(k, now) for k in page.items], next_cursor=page.next_cursor
    )


@router.get("/breaks/{break_id}", response_model=BreakOut)
def get_break(
    break_id: BreakId,
    c: CtxDep,
    _: Annotated[Principal, Depends(require(P.RECONCILIATION_READ))],
) -> BreakOut:
    """One break with its lines, amounts and history."""
    service = c.bo.reconciliation
    kept = service.get(break_id)
    if kept is None:
        raise ApiError(404, "break_not_found", f"no break {break_id}")
    return BreakOut.of(kept, service.clock.now())


@router.post("/breaks/{break_id}/assignment", response_model=BreakOut, responses=CONFLICT)
def assign_break(
    break_id: BreakId,
    body: AssignIn,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.RECONCILIATION_WRITE))],
) -> BreakOut:
    """Give a break an owner; an open break is then being investigated."""
    service = c.bo.reconciliation
    verdict = service.assign(break_id, body.owner, _auditing(c, p, request), body.note)
    return _answer(c, break_id, verdict)


@router.post("/breaks/{break_id}/status", response_model=BreakOut, responses=CONFLICT)
def change_break_status(
    break_id: BreakId,
    body: StatusIn,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.RECONCILIATION_WRITE))],
) -> BreakOut:
    """Resolve or write off a break (a note says why), or mark it being investigated."""
    service = c.bo.reconciliation
    verdict = service.set_status(
        break_id, BreakStatus(body.status), body.note, _auditing(c, p, request)
    )
    return _answer(c, break_id, verdict)


@router.post("/breaks/{break_id}/reopen", response_model=BreakOut, responses=CONFLICT)
def reopen_break(
    break_id: BreakId,
    body: NoteIn,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.RECONCILIATION_WRITE))],
) -> BreakOut:
    """Undo a close, a person's or an automatic rule's: the break is open again."""
    verdict = c.bo.reconciliation.reopen(break_id, body.note, _auditing(c, p, request))
    if verdict is Transition.NOT_ALLOWED:
        raise ApiError(409, "break_not_closed", f"break {break_id} is not closed")
    return _answer(c, break_id, verdict)


@router.post("/breaks/{break_id}/redrive", response_model=RedriveOut, responses=CONFLICT)
def redrive_break(
    break_id: BreakId,
    body: RedriveIn,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.RECONCILIATION_WRITE))],
) -> RedriveOut:
    """Re-drive a line missing in Tally as an event, through the same door as any report
    line; its provenance (report file and line) goes with it, and the break is resolved
    with a note naming the event's key (audited). The event log deduplicates by key, so
    doing it again appends nothing again."""
    out = c.bo.reconciliation.redrive(break_id, body.game_type, _auditing(c, p, request), body.note)
    if out.verdict is Transition.NOT_ALLOWED:
        raise ApiError(409, "break_not_redriven", f"break {break_id} not re-driven: {out.detail}")
    kept = _answer(c, break_id, out.verdict)
    return RedriveOut.model_validate({"event_key": out.key, "appended": out.detail, "break": kept})
