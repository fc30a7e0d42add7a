"""Behaviour watch: rollback storms, bonus abuse, a partner subtree's shift. Pure.

Robust baselines, each a count against a slowly learnt rate:

- Rollback storm: per (region, provider), the rollbacks of the last 1, 2 and 3 minutes
  against the bets of those minutes times the learnt rollback share. Poisson chance under
  ``p_storm`` and over ``storm_ratio`` times the share is a storm.
- Bonus abuse: per player, tumbling windows of ``window_rounds`` bets; the bonus wins in
  one window against the population's bonus rate (an EWMA over every bet). A count that
  chance gives less than once in ``p_tail`` flags the player; ``ring_size`` flagged players
  under one agent within ``ring_window_s`` is a ring (critical).
- Subtree shift: per (agent, currency), each hour's GGR standardised against the agent's
  learnt margin (variance from the stakes' squares) feeds a two-sided CUSUM.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tally.kernel.alerts import Severity
from tally.risk.detectors.model import (
    BET,
    BONUS_WIN,
    HOUR,
    MINUTE,
    RETURNS,
    ROLLBACK,
    Clear,
    Said,
    WatchEvent,
    instant,
    signal,
)
from tally.risk.detectors.stats import Cusum, poisson_sf

ROLLBACK_STORM = "risk.behaviour.rollback_storm"
BONUS_ABUSE = "risk.behaviour.bonus_abuse"
BONUS_RING = "risk.behaviour.bonus_ring"
SUBTREE_SHIFT = "risk.behaviour.subtree_shift"


@dataclass(frozen=True, slots=True)
class BehaviourLimits:
    p_tail: float = 1e-7
    p_storm: float = 1e-6
    storm_ratio: float = 5.0
    storm_min: int = 5
    rollback_share_start: float = 0.01
    rollback_alpha: float = 0.001  # per bet
    calm_minutes: int = 3
    window_rounds: int = 10
    bonus_rate_start: float = 0.02
    bonus_alpha: float = 0.0001  # per bet
    ring_size: int = 2
    ring_window_s: int = 6 * HOUR
    players_remembered: int = 200_000
    subtree_volatility: float = 3.0
    subtree_slack: float = 0.5
    subtree_threshold: float = 10.0
    subtree_alpha: float = 0.05  # per hour
    subtree_warmup_hours: int = 24
    subtree_learn_z: float = 3.0


class RollbackStorm:
    name = "rollback_storm"

    def __init__(self, limits: BehaviourLimits | None = None) -> None:
        self.limits = limits or BehaviourLimits()
        self.share = self.limits.rollback_share_start
        self.minute = -1
        # region|provider -> [bets now, rollbacks now, recent [bets, rb] pairs, storm, calm]
        self.series: dict[str, list[Any]] = {}
        self._by: dict[tuple[str, str], list[Any]] = {}  # the same lists, by a tuple

    def observe(self, e: WatchEvent, out: list[Said]) -> None:
        if e.kind != BET and e.kind != ROLLBACK:
            return
        s = self._by.get((e.region, e.provider))
        if s is None:
            s = self.series[f"{e.region}|{e.provider}"] = [0, 0, [], 0, 0]
            self._by[(e.region, e.provider)] = s
        if e.kind == BET:
            s[0] += 1
        else:
            s[1] += 1

    def tick(self, now: int, out: list[Said]) -> None:
        minute = now // MINUTE
        if self.minute < 0:
            self.minute = minute
            return
        while self.minute < minute:
            self.minute += 1
            for rp, s in self.series.items():
                self._close(rp, s, self.minute * MINUTE, out)

    def _close(self, rp: str, s: list[Any], end: int, out: list[Said]) -> None:
        lim = self.limits
        recent: list[list[int]] = s[2]
        recent.append([s[0], s[1]])
        del recent[:-3]
        bets_now, rb_now = s[0], s[1]
        s[0] = s[1] = 0
        if s[3]:
            s[4] = s[4] + 1 if rb_now <= 2 * self.share * max(bets_now, 1) + 1 else 0
            if s[4] >= lim.calm_minutes:
                s[3] = s[4] = 0
                out.append(Clear(ROLLBACK_STORM, rp, instant(end)))
            return
        for k in (1, 2, 3):
            if len(recent) < k:
                break
            bets = sum(b for b, _ in recent[-k:])
            rbs = sum(r for _, r in recent[-k:])
            mean = self.share * max(bets, 1)
            if (
                rbs >= lim.storm_min
                and rbs >= lim.storm_ratio * mean
                and poisson_sf(rbs, mean) < lim.p_storm
            ):
                s[3] = 1
                region, provider = rp.split("|", 1)
                out.append(
                    signal(
                        ROLLBACK_STORM,
                        rp,
                        end,
                        f"{provider} rolled back {rbs} of {bets} bets in {region} in the "
                        f"last {k} minute(s), where {mean:.1f} rollbacks were expected",
                        severity=Severity.CRITICAL,
                        evidence={
                            "rollbacks": rbs,
                            "bets": bets,
                            "expected": mean,
                            "share_learnt": self.share,
                        },
                        region=region,
                        provider=provider,
                        confidence_permille=999,
                    )
                )
                return
        # Learn the share only from calm minutes: a storm must not teach itself as normal.
        self.share = self.share * (1.0 - lim.rollback_alpha) ** bets_now
        self.share += lim.rollback_alpha * rb_now

    def state(self) -> dict[str, Any]:
        return {"share": self.share, "minute": self.minute, "series": self.series}

    def load(self, state: Mapping[str, Any]) -> None:
        self.share = float(state.get("share", self.limits.rollback_share_start))
        self.minute = int(state.get("minute", -1))
        self.series = {k: list(v) for k, v in state.get("series", {}).items()}
        self._by = {tuple(k.split("|", 1)): v for k, v in self.series.items()}  # type: ignore[misc]


class BonusAbuse:
    name = "bonus_abuse"

    def __init__(self, limits: BehaviourLimits | None = None) -> None:
        self.limits = limits or BehaviourLimits()
        self.rate = self.limits.bonus_rate_start
        # player -> [rounds, bonus wins, bonus amount, stakes, flagged]
        self.players: OrderedDict[str, list[int]] = OrderedDict()
        self.flagged: dict[str, dict[str, int]] = {}  # agent -> {player: flagged at}

    def observe(self, e: WatchEvent, out: list[Said]) -> None:
        if e.kind == BET:
            self.rate += self.limits.bonus_alpha * (0.0 - self.rate)
        elif e.kind == BONUS_WIN:
            self.rate += self.limits.bonus_alpha
        else:
            return
        p = self.players.get(e.player)
        if p is None:
            p = self.players[e.player] = [0, 0, 0, 0, 0]
            if len(self.players) > self.limits.players_remembered:
                self.players.popitem(last=False)
        if e.kind == BONUS_WIN:
            p[1] += 1
            p[2] += e.amount
            return
        p[0] += 1
        p[3] += e.amount
        if p[0] >= self.limits.window_rounds:
            self._judge(e, p, out)
            p[0] = p[1] = p[2] = p[3] = 0
            self.players.move_to_end(e.player)

    def _judge(self, e: WatchEvent, p: list[int], out: list[Said]) -> None:
        lim = self.limits
        rounds, bonuses, amount, stakes = p[0], p[1], p[2], p[3]
        mean = self.rate * rounds
        if poisson_sf(bonuses, mean) >= lim.p_tail:
            return
        key = f"player:{e.player}"
        ring = self.flagged.setdefault(e.agent, {})
        ring[e.player] = e.at
        for other in [x for x, t in ring.items() if e.at - t > lim.ring_window_s]:
            del ring[other]
        evidence = {
            "bonus_wins": bonuses,
            "rounds": rounds,
            "expected": mean,
            "bonus_amount": amount,
            "stakes": stakes,
        }
        out.append(
            signal(
                BONUS_ABUSE,
                key,
                e.at,
                f"player {e.player} won {bonuses} bonuses in {rounds} rounds where "
                f"{mean:.2f} were expected",
                evidence=evidence,
                region=e.region,
                provider=e.provider,
                operator=e.operator,
                money_at_risk=amount,
                currency=e.currency,
                confidence_permille=990,
            )
        )
        if len(ring) >= lim.ring_size:
            out.append(
                signal(
                    BONUS_RING,
                    f"agent:{e.agent}",
                    e.at,
                    f"{len(ring)} players under agent {e.agent} win bonuses far above the "
                    "population: a bonus-abuse ring",
                    severity=Severity.CRITICAL,
                    evidence={"players": ",".join(sorted(ring)), **evidence},
                    region=e.region,
                    operator=e.operator,
                    money_at_risk=amount,
                    currency=e.currency,
                    confidence_permille=999,
                )
            )

    def tick(self, now: int, out: list[Said]) -> None:
        """Windows close on rounds, not on time."""

    def state(self) -> dict[str, Any]:
        return {"rate": self.rate, "players": list(self.players.items()), "flagged": self.flagged}

    def load(self, state: Mapping[str, Any]) -> None:
        self.rate = float(state.get("rate", self.limits.bonus_rate_start))
        self.players = OrderedDict((k, list(v)) for k, v in state.get("players", []))
        self.flagged = {k: dict(v) for k, v in state.get("flagged", {}).items()}


class SubtreeShift:
    name = "subtree_shift"

    def __init__(self, limits: BehaviourLimits | None = None) -> None:
        self.limits = limits or BehaviourLimits()
        self.hour = -1
        # agent|currency -> [stakes, stakes², returns, margin, hours, cusum hi, lo, shifted]
        self.agents: dict[str, list[Any]] = {}
        self._by: dict[tuple[str, str], list[Any]] = {}  # the same lists, by a tuple

    def observe(self, e: WatchEvent, out: list[Said]) -> None:
        if not e.agent or (e.kind != BET and e.kind not in RETURNS):
            return
        a = self._by.get((e.agent, e.currency))
        if a is None:
            a = self.agents[f"{e.agent}|{e.currency}"] = [0, 0, 0, 0.0, 0, 0.0, 0.0, 0]
            self._by[(e.agent, e.currency)] = a
        if e.kind == BET:
            a[0] += e.amount
            a[1] += e.amount * e.amount
        else:
            a[2] += e.amount

    def tick(self, now: int, out: list[Said]) -> None:
        hour = now // HOUR
        if self.hour < 0:
            self.hour = hour
            return
        while self.hour < hour:
            self.hour += 1
            for k, a in self.agents.items():
                self._close(k, a, self.hour * HOUR, out)

    def _close(self, k: str, a: list[Any], end: int, out: list[Said]) -> None:
        lim = self.limits
        stakes, sq, returns = a[0], a[1], a[2]
        a[0] = a[1] = a[2] = 0
        if stakes <= 0:
            return
        margin = (stakes - returns) / stakes
        a[4] += 1
        if a[4] <= lim.subtree_warmup_hours:
            a[3] += (margin - a[3]) / a[4]
            return
        sd = lim.subtree_volatility * math.sqrt(sq) / stakes
        z = (margin - a[3]) / sd
        cusum = Cusum(lim.subtree_slack, lim.subtree_threshold, a[5], a[6])
        side = cusum.update(z)
        a[5], a[6] = cusum.high, cusum.low
        if side and not a[7]:
            a[7] = 1
            agent, currency = k.split("|", 1)
            out.append(
                signal(
                    SUBTREE_SHIFT,
                    k,
                    end,
                    f"the subtree under agent {agent} moved its margin to {margin:.3f} from "
                    f"a learnt {a[3]:.3f} ({currency}): its net loss pattern changed",
                    evidence={"margin": margin, "learnt": a[3], "cusum_z": z},
                    currency=currency,
                    confidence_permille=990,
                )
            )
        elif not side:
            if a[7]:
                a[7] = 0
                out.append(Clear(SUBTREE_SHIFT, k, instant(end)))
            if abs(z) < lim.subtree_learn_z:  # an hour far off is not learnt as normal
                a[3] += lim.subtree_alpha * (margin - a[3])

    def state(self) -> dict[str, Any]:
        return {"hour": self.hour, "agents": self.agents}

    def load(self, state: Mapping[str, Any]) -> None:
        self.hour = int(state.get("hour", -1))
        self.agents = {k: list(v) for k, v in state.get("agents", {}).items()}
        self._by = {tuple(k.split("|", 1)): v for k, v in self.agents.items()}  # type: ignore[misc]
