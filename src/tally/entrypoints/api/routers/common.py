"""Parameter types and response documentation that more than one router uses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query

from tally.auth.policy import Permission
from tally.entrypoints.api import schemas as s
from tally.entrypoints.api.deps import Ctx, ctx
from tally.entrypoints.api.errors import ErrorBody

P = Permission
CtxDep = Annotated[Ctx, Depends(ctx)]
Cursor = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page"),
]
Limit = Annotated[int, Query(ge=1, le=500)]
Id = Annotated[str, Path(min_length=1, max_length=128, pattern=s.PRINTABLE)]
DimValue = Annotated[str | None, Query(max_length=128, pattern=s.PRINTABLE)]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Conflicts with the current state"}
}
