"""Routes of the bulk ways in and of the input quarantine.

Partner feeds (``POST /v1/feeds/{operator}/events``) and batch reports
(``POST /v1/imports``) are pushed by machine clients with the ``feed`` role, each only
for the operators or providers in its key's scope. The input quarantine is read and
worked by staff, like the ledger's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from tally.auth.model import OwnerRef, Principal
from tally.auth.policy import Permission
from tally.entrypoints.api.deps import Ctx, ctx, require
from tally.entrypoints.api.deps import source as client_address
from tally.entrypoints.api.errors import ERROR_RESPONSES, ApiError
from tally.ingest.feeds import FeedRefused
from tally.ingest.files import ReportRefused
from tally.ingest.lines import ReportFormat
from tally.kernel.limits import ApiLimits
from tally.ledger.model import OwnerKind
from tally.quarantine.inputs import Quarantined, Reason, Status
from tally.quarantine.ledger import QuarantineError

P = Permission
CtxDep = Annotated[Ctx, Depends(ctx)]
Name = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]
IMPORT_MAX_BYTES = ApiLimits().import_body_max_bytes  # one uploaded report

router = APIRouter(prefix="/v1", tags=["ingestion"], responses=ERROR_RESPONSES)


class InputEntryOut(BaseModel):
    id: int
    source: str = Field(description="callback, file or feed")
    channel: str = Field(description="the provider, file name or operator it came from")
    reason: Reason
    detail: str
    received_at: datetime
    key: str
    status: Status
    resolved_by: str
    resolved_at: datetime | None
    note: str
    payload: str = Field(description="the payload as received")

    @classmethod
    def of(cls, q: Quarantined) -> InputEntryOut:
        r = q.refused
        return cls(
            id=q.id,
            source=r.source,
            channel=r.channel,
            reason=r.reason,
            detail=r.detail,
            received_at=r.received_at,
            key=r.key,
            status=q.status,
            resolved_by=q.resolved_by,
            resolved_at=q.resolved_at,
            note=q.note,
            payload=r.payload,
        )


class InputPageOut(BaseModel):
    items: list[InputEntryOut]
    next_cursor: str | None


class InputRedriveOut(BaseModel):
    accepted: bool
    detail: str


class DismissIn(BaseModel):
    note: str = Field(min_length=1, max_length=1_000, description="why it is closed unredriven")


class ItemOut(BaseModel):
    index: int
    outcome: str = Field(description="accepted, duplicate, conflict or rejected")
    key: str
    position: int
    reason: str
    detail: str


class ImportOut(BaseModel):
    file_id: str = Field(description="the report's SHA-256; a re-upload resumes or skips")
    name: str
    resumed_after: int
    counts: dict[str, int]


def _in_scope(p: Principal, kind: OwnerKind, owner: str) -> None:
    if not p.may_push_for(OwnerRef(kind, owner)):
        raise ApiError(403, "forbidden", f"this key may not push for {kind.value} {owner!r}")


@router.get("/quarantine/inputs", response_model=InputPageOut)
def input_entries(
    c: CtxDep,
    _: Annotated[Principal, Depends(require(P.QUARANTINE_READ))],
    status: Status | None = None,
    reason: Reason | None = None,
    source: Annotated[str | None, Query(pattern=r"^(callback|file|feed)$")] = None,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> InputPageOut:
    """Everything refused on the way in (bad signature, malformed, conflict, ...)."""
    page = c.bo.ingest.inputs.entries(
        status=status, reason=reason, source=source, cursor=cursor, limit=limit
    )
    return InputPageOut(
        items=[InputEntryOut.of(q) for q in page.items], next_cursor=page.next_cursor
    )


@router.get("/quarantine/inputs/{entry_id}", response_model=InputEntryOut)
def input_entry(
    entry_id: Annotated[int, Path(ge=1, le=2**62)],
    c: CtxDep,
    _: Annotated[Principal, Depends(require(P.QUARANTINE_READ))],
) -> InputEntryOut:
    entry = c.bo.ingest.inputs.get(entry_id)
    if entry is None:
        raise ApiError(404, "entry_not_found", f"no quarantine entry {entry_id}")
    return InputEntryOut.of(entry)


def _desk_error(exc: QuarantineError) -> ApiError:
    return ApiError(404 if exc.code == "entry_not_found" else 409, exc.code, exc.message)


@router.post("/quarantine/inputs/{entry_id}/redrive", response_model=InputRedriveOut)
def redrive_input(
    entry_id: Annotated[int, Path(ge=1, le=2**62)],
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.QUARANTINE_REDRIVE))],
) -> InputRedriveOut:
    """Send an entry through the door it came in by again (files and feeds here;
    provider callbacks with `tally quarantine redrive`, where the gateway runs)."""
    try:
        outcome = c.bo.ingest.desk.redrive(entry_id, actor=p.actor, source=client_address(request))
    except QuarantineError as exc:
        raise _desk_error(exc) from None
    return InputRedriveOut(accepted=outcome.accepted, detail=outcome.detail)


@router.post("/quarantine/inputs/{entry_id}/dismiss", response_model=InputEntryOut)
def dismiss_input(
    entry_id: Annotated[int, Path(ge=1, le=2**62)],
    body: DismissIn,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.QUARANTINE_REDRIVE))],
) -> InputEntryOut:
    try:
        c.bo.ingest.desk.dismiss(
            entry_id, actor=p.actor, note=body.note, source=client_address(request)
        )
    except QuarantineError as exc:
        raise _desk_error(exc) from None
    entry = c.bo.ingest.inputs.get(entry_id)
    assert entry is not None
    return InputEntryOut.of(entry)


@router.post("/feeds/{operator}/events", response_model=list[ItemOut])
async def push_feed(
    operator: Name,
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.EVENTS_PUSH))],
) -> list[dict[str, Any]]:
    """An operator's channel transactions in bulk: a JSON array of canonical events
    (docs/reference/event.schema.json, without recorded_at) or JSON Lines. Each item is
    answered on its own; refused ones are kept in the input quarantine. A key reports
    only for the providers in its scope (`provider:<id>`, set when the key is made); an
    event for any other provider is refused as forbidden."""
    _in_scope(p, OwnerKind.OPERATOR, operator)
    # A scoped key reports only for the providers in its scope (set when the key is made):
    # an operator's feed must not log events under another provider's transaction ids.
    providers = (
        None if p.unscoped else frozenset(o.id for o in p.scope if o.kind is OwnerKind.PROVIDER)
    )
    body = await request.body()
    try:
        results = c.bo.ingest.feeds.push(operator, body, providers=providers)
    except FeedRefused as exc:
        raise ApiError(422, "feed_refused", str(exc)) from None
    return [r.as_dict() for r in results]


@router.post("/imports", response_model=ImportOut)
async def upload_report(
    request: Request,
    c: CtxDep,
    p: Annotated[Principal, Depends(require(P.EVENTS_PUSH))],
    provider: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")],
    name: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")],
    tz: Annotated[str, Query(max_length=64)] = "UTC",
    currency: Annotated[str, Query(max_length=8)] = "",
) -> ImportOut:
    """A provider's batch report (CSV with a header, or JSON Lines when the name ends in
    .jsonl) as the request body. Re-uploading the same bytes resumes or skips. A report
    may state its own zone and currency on a first line (`# tz=Asia/Tokyo currency=JPY`),
    which wins over `tz` and `currency`."""
    _in_scope(p, OwnerKind.PROVIDER, provider)
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(422, "invalid_time_zone", f"{tz!r} is not a time zone") from None
    body = await request.body()
    if len(body) > IMPORT_MAX_BYTES:
        raise ApiError(413, "too_large", f"a report carries at most {IMPORT_MAX_BYTES} bytes")
    try:
        report = c.bo.ingest.importer.run(
            name, body, ReportFormat(provider, zone, currency.upper())
        )
    except ReportRefused as exc:
        raise ApiError(422, "report_refused", str(exc)) from None
    return ImportOut(
        file_id=report.file_id,
        name=report.name,
        resumed_after=report.resumed_after,
        counts=report.counts.as_dict(),
    )
