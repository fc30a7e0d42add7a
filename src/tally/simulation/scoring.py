"""A NAB-style scorer: labelled incidents against the alerts a watch raised.

Each incident has a window, from its start to ``grace`` after its end. An alert is the
opening of a (kind, key) episode (signals repeated while it is open refresh it; a clear
closes it), as the alerts service counts them. An alert inside an incident's window whose
dimensions agree with the incident's (a shared region, provider, game or operator, and
none that differs) answers for it; any other alert is a false positive. Per kind: recall
and the delay from the incident's start to its first answering alert; over all: precision.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tally.kernel.alerts import AlertSignal
from tally.risk.detectors.model import Clear, Said
from tally.simulation.incidents import Incident

GRACE = timedelta(minutes=60)
_DIMS = ("region", "provider", "game", "operator")


def opened(said: Iterable[Said]) -> list[AlertSignal]:
    """The alerts: the first signal of each (kind, key) episode."""
    open_: set[tuple[str, str]] = set()
    found: list[AlertSignal] = []
    for s in said:
        k = (s.kind, s.key)
        if isinstance(s, Clear):
            open_.discard(k)
        elif k not in open_:
            open_.add(k)
            found.append(s)
    return found


def answers(alert: AlertSignal, incident: Incident, grace: timedelta = GRACE) -> bool:
    if not incident.start <= alert.at <= incident.end + grace:
        return False
    shared = False
    for dim in _DIMS:
        want, have = getattr(incident, dim), getattr(alert, dim)
        if want and have:
            if want != have:
                return False
            shared = True
    return shared


@dataclass(slots=True)
class KindScore:
    incidents: int = 0
    detected: int = 0
    delays_s: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.detected / self.incidents if self.incidents else 1.0


@dataclass(slots=True)
class Score:
    kinds: dict[str, KindScore]
    alerts: int
    true_alerts: int
    false_alerts: list[AlertSignal]

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else 1.0

    @property
    def recall(self) -> float:
        total = sum(k.incidents for k in self.kinds.values())
        return sum(k.detected for k in self.kinds.values()) / total if total else 1.0

    @property
    def median_delay_s(self) -> float:
        delays = [d for k in self.kinds.values() for d in k.delays_s]
        return statistics.median(delays) if delays else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "median_delay_s": round(self.median_delay_s, 1),
            "alerts": self.alerts,
            "false_alerts": len(self.false_alerts),
            "false_alert_kinds": sorted({a.kind for a in self.false_alerts}),
            "kinds": {
                name: {
                    "incidents": k.incidents,
                    "detected": k.detected,
                    "recall": round(k.recall, 4),
                    "median_delay_s": round(statistics.median(k.delays_s), 1)
                    if k.delays_s
                    else None,
                }
                for name, k in sorted(self.kinds.items())
            },
        }


def score(incidents: Sequence[Incident], said: Iterable[Said], grace: timedelta = GRACE) -> Score:
    alerts = opened(said)
    kinds: dict[str, KindScore] = {}
    for x in incidents:
        kinds.setdefault(x.kind, KindScore()).incidents += 1
    true = 0
    false: list[AlertSignal] = []
    for a in alerts:
        if any(answers(a, x, grace) for x in incidents):
            true += 1
        else:
            false.append(a)
    for x in incidents:
        first: datetime | None = min((a.at for a in alerts if answers(a, x, grace)), default=None)
        if first is not None:
            k = kinds[x.kind]
            k.detected += 1
            k.delays_s.append((first - x.start).total_seconds())
    return Score(kinds, len(alerts), true, false)
