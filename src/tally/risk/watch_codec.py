"""Signals and clears as JSON-able data, for a store's outbox. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tally.kernel.alerts import AlertSignal, Severity
from tally.risk.detectors.model import Clear, Said


def said_to_dict(s: Said) -> dict[str, Any]:
    if isinstance(s, Clear):
        return {"clear": True, "kind": s.kind, "key": s.key, "at": s.at.isoformat()}
    return {
        "kind": s.kind,
        "key": s.key,
        "severity": s.severity.value,
        "cause": s.cause,
        "at": s.at.isoformat(),
        "region": s.region,
        "provider": s.provider,
        "operator": s.operator,
        "game": s.game,
        "money_at_risk": s.money_at_risk,
        "currency": s.currency,
        "confidence_permille": s.confidence_permille,
        "evidence": dict(s.evidence),
        "refs": list(s.refs),
    }


def said_from_dict(d: Mapping[str, Any]) -> Said:
    at = datetime.fromisoformat(d["at"])
    if d.get("clear"):
        return Clear(d["kind"], d["key"], at)
    return AlertSignal(
        kind=d["kind"],
        key=d["key"],
        severity=Severity(d["severity"]),
        cause=d["cause"],
        at=at,
        region=d["region"],
        provider=d["provider"],
        operator=d["operator"],
        game=d["game"],
        money_at_risk=int(d["money_at_risk"]),
        currency=d["currency"],
        confidence_permille=int(d["confidence_permille"]),
        evidence=dict(d["evidence"]),
        refs=tuple(d["refs"]),
    )
