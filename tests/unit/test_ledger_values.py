"""The ledger's hot-path values (ADR 0010): frozen to the type checker, plain at run time.

Their immutability rests on ``mypy --strict``, so the first test runs mypy on a snippet
that assigns a field of each and expects each assignment refused.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mypy import api

import tally
from tally.ledger.model import Rejection, ResultCode, Transfer, TransferKind, TransferRequest

NOW = datetime(2026, 3, 1, tzinfo=UTC)
SNIPPET = """
from datetime import UTC, datetime
from tally.ledger.model import (
    Rejection, ResultCode, Transfer, TransferKind, TransferRequest, TransferResult,
)
now = datetime(2026, 3, 1, tzinfo=UTC)
request = TransferRequest("t1", "a", "b", 5, "EUR", "c")
transfer = Transfer("t1", TransferKind.SINGLE, "a", "b", 5, "EUR", "c", now, now)
result = TransferResult("t1", ResultCode.OK, transfer)
rejection = Rejection("t1", ResultCode.EXCEEDS_CREDITS, request, now)
request.amount = 6
transfer.amount = 6
result.code = ResultCode.EXISTS
rejection.code = ResultCode.OK
"""


def test_the_type_checker_refuses_an_assignment_to_any_of_their_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MYPYPATH", str(Path(tally.__file__).parents[1]))
    out, _err, status = api.run(
        ["--config-file=", "--strict", "--cache-dir=/dev/null", "-c", SNIPPET]
    )
    refused = [line for line in out.splitlines() if "is read-only" in line]
    assert status == 1, out
    assignments = [
        str(number)
        for number, line in enumerate(SNIPPET.splitlines(), start=1)
        if line.split(" = ")[0].count(".") == 1
    ]
    assert len(assignments) == 4
    assert [line.split(":")[1] for line in refused] == assignments, out
    assert "Found 4 errors" in out, out


def test_at_run_time_they_compare_by_value_and_change_only_by_copy() -> None:
    request = TransferRequest("t1", "a", "b", 5, "EUR", "c")
    assert request == TransferRequest("t1", "a", "b", 5, "EUR", "c")
    assert request != TransferRequest("t1", "a", "b", 6, "EUR", "c")
    transfer = Transfer("t1", TransferKind.SINGLE, "a", "b", 5, "EUR", "c", NOW, NOW)
    posted = replace(transfer, amount=7)
    assert (transfer.amount, posted.amount) == (5, 7)
    assert posted == replace(transfer, amount=7)
    assert Rejection("t1", ResultCode.EXISTS, request, NOW) == Rejection(
        "t1", ResultCode.EXISTS, request, NOW
    )
    assert not hasattr(transfer, "__dict__")  # slotted: no stray attributes
