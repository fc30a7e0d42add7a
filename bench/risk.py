"""The risk watch benchmark: labelled incidents, a clean week, speed, memory, forecasts.

- incidents: a seeded world with ``per_kind`` incidents of each kind (provider outage in
  one region, RTP drift of one game, bonus-abuse ring, rollback storm, late batch, traffic
  surge) over ``days``, after a clean warm-up; the NAB-style scorer's precision, recall and
  detection delay per kind. The detectors' own rate (events/s, decoded events through
  every detector on one core) and resident memory sampled through the run.
- clean: a clean week; every alert is a false one (the target is none).
- behaviour: the bonus-ring incidents scored for the Poisson baseline and for river's
  HalfSpaceTrees, each alone: the docs keep the better.
- worker: the watch worker over an in-memory event log (decoding the stored bodies,
  committing state and outbox per batch), against settlement's recorded replay rate.
- forecast: four simulated weeks of the watch's hourly series, three to learn from and the
  fourth held out; MASE of the profile and of statsforecast's MSTL against the seasonal
  naive, interval coverage; and the refit time of 100 series.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import rss_mb
from tally.kernel.alerts import AlertSignal
from tally.kernel.clock import FixedClock
from tally.risk.detectors.behaviour import BonusAbuse
from tally.risk.detectors.learned import LearnedBehaviour
from tally.risk.detectors.model import Detector, Said
from tally.risk.detectors.volume import VolumeWatch
from tally.risk.forecast import evaluate, fit
from tally.risk.watch import Pipeline, RiskWatch, WatchLimits, default_detectors
from tally.simulation.incidents import BONUS_RING, Incident, plan, stream
from tally.simulation.riskwatch import certified_games, events, to_event
from tally.simulation.scoring import score
from tally.simulation.world import World, build_world

START = datetime(2026, 3, 2, tzinfo=UTC)
# The targets.
RECALL_MIN = 0.9
PRECISION_MIN = 0.8
MEDIAN_DELAY_MAX_S = 120.0
DETECTOR_EVENTS_PER_S_MIN = 50_000
FORECAST_IMPROVEMENT_MIN = 0.2
COVERAGE_95 = (0.92, 0.98)
REFIT_100_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class Config:
    seed: int = 1
    days: float = 2.0
    rounds_per_minute: float = 200.0
    per_kind: int = 2
    warmup_minutes: int = 120
    clean_days: float = 7.0
    clean_rounds_per_minute: float = 100.0
    behaviour_days: float = 2.0
    worker_events: int = 200_000
    forecast_rounds_per_minute: float = 15.0
    players: int = 600


def _watch(
    world: World,
    minutes: int,
    rpm: float,
    incidents: list[Incident],
    seed: int,
    detectors: list[Detector],
    report: Callable[[int], None],
) -> dict[str, Any]:
    """Generate, then time the detectors alone on the decoded events, in chunks."""
    pipeline = Pipeline(detectors)
    said: list[Said] = []
    records = stream(world, minutes=minutes, rounds_per_minute=rpm, incidents=incidents, seed=seed)
    detect_s, count, rss = 0.0, 0, []
    chunk: list[Any] = []
    for e in events(records):
        chunk.append(e)
        if len(chunk) == 50_000:
            started = time.perf_counter()
            pipeline.feed(chunk, said)
            detect_s += time.perf_counter() - started
            count += len(chunk)
            rss.append([count, round(rss_mb(), 1)])
            report(len(chunk))
            chunk = []
    started = time.perf_counter()
    pipeline.feed(chunk, said)
    pipeline.advance(int((world.start + timedelta(minutes=minutes)).timestamp()), said)
    detect_s += time.perf_counter() - started
    count += len(chunk)
    report(len(chunk))
    return {
        "said": said,
        "events": count,
        "detect_s": detect_s,
        "events_per_s": count / detect_s if detect_s else 0.0,
        "rss_mb_by_events": rss,
        "pipeline": pipeline,
    }


def run_incidents(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    world = build_world(config.seed, START, players=config.players)
    minutes = int(config.days * 24 * 60)
    incidents = plan(
        world,
        minutes=minutes,
        per_kind=config.per_kind,
        seed=config.seed,
        after=config.warmup_minutes,
    )
    out = _watch(
        world,
        config.warmup_minutes + minutes,
        config.rounds_per_minute,
        incidents,
        config.seed,
        default_detectors(certified_games(world)),
        report,
    )
    after = START + timedelta(minutes=config.warmup_minutes)
    judged = [s for s in out["said"] if s.at >= after]
    scored = score(incidents, judged)
    return {
        "events": out["events"],
        "detector_events_per_s": out["events_per_s"],
        "rss_mb_by_events": out["rss_mb_by_events"],
        "score": scored.summary(),
        "false_alerts": [
            f"{a.at.isoformat()} {a.kind} {a.key}: {a.cause}" for a in scored.false_alerts
        ],
        "incidents": [
            {
                "kind": x.kind,
                "start": x.start.isoformat(),
                "region": x.region,
                "provider": x.provider,
                "game": x.game,
                "operator": x.operator,
            }
            for x in incidents
        ],
    }


def run_clean(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    world = build_world(config.seed + 100, START, players=config.players)
    out = _watch(
        world,
        int(config.clean_days * 24 * 60),
        config.clean_rounds_per_minute,
        [],
        config.seed + 100,
        default_detectors(certified_games(world)),
        report,
    )
    alerts = [s for s in out["said"] if isinstance(s, AlertSignal)]
    return {
        "events": out["events"],
        "detector_events_per_s": out["events_per_s"],
        "rss_mb_by_events": out["rss_mb_by_events"],
        "alerts": len(alerts),
        "alert_list": [f"{a.at.isoformat()} {a.kind} {a.key}: {a.cause}" for a in alerts],
    }


def run_behaviour(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    world = build_world(config.seed + 200, START, players=config.players)
    minutes = int(config.behaviour_days * 24 * 60)
    incidents = plan(
        world,
        minutes=minutes,
        per_kind=max(3, config.per_kind),
        seed=config.seed + 200,
        after=config.warmup_minutes,
        kinds=(BONUS_RING,),
    )
    found = {}
    for name, make in (("poisson_baseline", BonusAbuse), ("half_space_trees", LearnedBehaviour)):
        out = _watch(
            world,
            config.warmup_minutes + minutes,
            config.rounds_per_minute / 2,
            incidents,
            config.seed + 200,
            [make()],
            report,
        )
        s = score(incidents, out["said"])
        found[name] = {**s.summary(), "detector_events_per_s": out["events_per_s"]}
    return found


class _NullSink:
    def signal(self, alert: AlertSignal) -> None:
        """Counted nowhere: the benchmark times the watch, not the alerts."""

    def clear(self, kind: str, key: str, at: datetime) -> None:
        """As above."""


def run_worker(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    """The watch worker as a deployment runs it embedded: over the SQLite event log
    (stored bodies decoded), its state, position and outbox committed to SQLite."""
    from tally.adapters.sqlite.events import SqliteEventLog
    from tally.adapters.sqlite.risk_watch import SqliteRiskStore

    world = build_world(config.seed + 300, START, players=config.players)
    with tempfile.TemporaryDirectory(prefix="tally-risk-bench-") as tmp:
        path = Path(tmp) / "tally.sqlite"
        log = SqliteEventLog(path)
        records = stream(
            world,
            minutes=24 * 60,
            rounds_per_minute=config.rounds_per_minute,
            seed=config.seed + 300,
        )
        batch = []
        for r in records:
            batch.append(to_event(r))
            if len(batch) >= config.worker_events:
                break
        for i in range(0, len(batch), 10_000):
            log.append(batch[i : i + 10_000])
        store = SqliteRiskStore(path)
        watch = RiskWatch(
            log,
            store,
            _NullSink(),
            default_detectors(certified_games(world)),
            FixedClock(START),
            WatchLimits(),
        )
        started = time.perf_counter()
        read = watch.drain()
        elapsed = time.perf_counter() - started
        store.close()
        log.close()
    report(read)
    settlement = _settlement_recorded()
    rate = read / elapsed
    return {
        "events": read,
        "events_per_s": rate,
        "settlement_replay_events_per_s": settlement,
        "ratio_to_settlement": rate / settlement if settlement else None,
    }


def _settlement_recorded() -> float | None:
    """Settlement's replay rate (SQLite) as last recorded by ``python -m bench settlement``."""
    path = Path("bench/results/settlement-latest.json")
    if not path.exists():
        return None
    stores = json.loads(path.read_text()).get("stores", [])
    for s in stores:
        if s.get("store") == "sqlite":
            return float(s["replay"]["events_per_s"])
    return None


def run_forecast(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    world = build_world(config.seed + 400, START, players=config.players)
    volume = VolumeWatch()
    pipeline = Pipeline([volume])
    said: list[Said] = []
    records = stream(
        world,
        minutes=4 * 7 * 24 * 60 + 60,
        rounds_per_minute=config.forecast_rounds_per_minute,
        seed=config.seed + 400,
    )
    chunk = []
    for e in events(records):
        chunk.append(e)
        if len(chunk) == 50_000:
            pipeline.feed(chunk, said)
            report(len(chunk))
            chunk = []
    pipeline.feed(chunk, said)
    pipeline.advance(int((START + timedelta(weeks=4, hours=1)).timestamp()), said)
    split = int(START.timestamp()) // 3600 + 3 * 168
    end = split + 168
    history: dict[str, dict[int, float]] = {}
    held: dict[str, dict[int, float]] = {}
    for name, points in volume.history.items():
        hours = {int(h): v for h, v in points.items()}
        history[name] = {h: v for h, v in hours.items() if h < split}
        held[name] = {h: v for h, v in hours.items() if split <= h < end}
    found: dict[str, Any] = {"series": len(history)}
    for method in ("profile", "mstl"):
        acc = evaluate(history, held, method=method)
        found[method] = {
            "series": acc.series,
            "mase": acc.mase_model,
            "mase_seasonal_naive": acc.mase_naive,
            "improvement": acc.improvement,
            "coverage_80": acc.coverage_80,
            "coverage_95": acc.coverage_95,
            "fit_s": acc.fit_s,
        }
    found["refit_100_s"] = _refit_100()
    return found


def _refit_100() -> float:
    """Refit time of the default method for 100 hourly series of three weeks."""
    rng = random.Random(5)
    history = {}
    for i in range(100):
        base = 50.0 + 10 * i
        history[f"bets|r{i}|p"] = {
            400_000 + h: max(0.0, rng.gauss(base * (1.5 + math.sin(h / 24 * 2 * math.pi)), 5.0))
            for h in range(3 * 168)
        }
    started = time.perf_counter()
    fit(history)
    return time.perf_counter() - started


def targets(results: dict[str, Any]) -> dict[str, bool]:
    s = results["incidents"]["score"]
    f = results["forecast"]["profile"]
    low, high = COVERAGE_95
    return {
        "met_recall": s["recall"] >= RECALL_MIN,
        "met_precision": s["precision"] >= PRECISION_MIN,
        "met_median_delay": s["median_delay_s"] < MEDIAN_DELAY_MAX_S,
        "met_clean_week": results["clean"]["alerts"] == 0,
        "met_detector_rate": results["incidents"]["detector_events_per_s"]
        >= DETECTOR_EVENTS_PER_S_MIN,
        "met_forecast_mase": f["improvement"] >= FORECAST_IMPROVEMENT_MIN,
        "met_coverage_95": low <= f["coverage_95"] <= high,
        "met_refit_100": results["forecast"]["refit_100_s"] < REFIT_100_MAX_S,
    }
