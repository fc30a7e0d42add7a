"""The alert signal every context raises through ``kernel.alerts``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tally.kernel.alerts import AlertSignal, Severity

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_priority_is_money_at_risk_weighted_by_confidence_rounded_down() -> None:
    alert = AlertSignal(
        kind="k",
        key="x",
        severity=Severity.WARNING,
        cause="c",
        at=AT,
        money_at_risk=12_345,
        currency="EUR",
        confidence_permille=999,
    )
    assert alert.priority == 12_332  # 12,345 * 0.999 = 12,332.655


def test_severities_are_ordered() -> None:
    assert Severity.INFO.order < Severity.WARNING.order < Severity.CRITICAL.order


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": ""}, "kind and a key"),
        ({"key": ""}, "kind and a key"),
        ({"confidence_permille": 1001}, "outside"),
        ({"money_at_risk": -1}, "never negative"),
        ({"at": datetime(2026, 3, 1)}, "time zone"),
    ],
)
def test_a_signal_that_cannot_be_acted_on_is_refused(
    changes: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {
        "kind": "k",
        "key": "x",
        "severity": Severity.INFO,
        "cause": "c",
        "at": AT,
    }
    fields.update(changes)
    with pytest.raises(ValueError, match=message):
        AlertSignal(**fields)  # type: ignore[arg-type]
