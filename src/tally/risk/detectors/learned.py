"""The streaming learner beside the baselines: river's HalfSpaceTrees on player windows.

Each player's window of ``window_rounds`` rounds becomes three features, each scaled into
[0, 1] by its known range (HalfSpaceTrees cuts the unit cube; an unscaled stake or count
would put every point in one corner): the share of rounds that ended in a bonus, the mean
win multiple (capped at ``multiple_cap``) and the share rolled back. A window whose
anomaly score passes ``threshold`` once the forest has seen ``warmup_windows`` windows
flags the player, as :class:`~tally.risk.detectors.behaviour.BonusAbuse` does, so the
benchmark scores the two on the same incidents (ADR 0026 says which is kept).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from river import anomaly

from tally.risk.detectors.behaviour import BONUS_ABUSE
from tally.risk.detectors.model import BET, BONUS_WIN, RETURNS, ROLLBACK, Said, WatchEvent, signal


@dataclass(frozen=True, slots=True)
class LearnedLimits:
    window_rounds: int = 10
    n_trees: int = 25
    height: int = 8
    forest_window: int = 500
    threshold: float = 0.95
    warmup_windows: int = 2_000
    multiple_cap: float = 10.0
    players_remembered: int = 200_000
    seed: int = 7


class LearnedBehaviour:
    name = "learned_behaviour"

    def __init__(self, limits: LearnedLimits | None = None) -> None:
        self.limits = limits or LearnedLimits()
        lim = self.limits
        self.forest = anomaly.HalfSpaceTrees(
            n_trees=lim.n_trees,
            height=lim.height,
            window_size=lim.forest_window,
            limits={"bonus": (0.0, 1.0), "multiple": (0.0, 1.0), "rollback": (0.0, 1.0)},
            seed=lim.seed,
        )
        self.windows = 0
        # player -> [rounds, bonuses, Σ win multiples, rollbacks, stakes]
        self.players: OrderedDict[str, list[float]] = OrderedDict()
        self.stakes: OrderedDict[str, int] = OrderedDict()

    def observe(self, e: WatchEvent, out: list[Said]) -> None:
        kind = e.kind
        if kind != BET and kind != BONUS_WIN and kind != ROLLBACK and kind not in RETURNS:
            return
        p = self.players.get(e.player)
        if p is None:
            p = self.players[e.player] = [0, 0, 0.0, 0, 0]
            if len(self.players) > self.limits.players_remembered:
                self.players.popitem(last=False)
        if kind == BET:
            self.stakes[e.round_id] = e.amount
            if len(self.stakes) > self.limits.players_remembered:
                self.stakes.popitem(last=False)
            p[0] += 1
            p[4] += e.amount
            if p[0] >= self.limits.window_rounds:
                self._judge(e, p, out)
                p[:] = [0, 0, 0.0, 0, 0]
                self.players.move_to_end(e.player)
        elif kind == BONUS_WIN:
            p[1] += 1
        elif kind == ROLLBACK:
            p[3] += 1
        else:
            stake = self.stakes.get(e.round_id)
            if stake:
                p[2] += e.amount / stake

    def _judge(self, e: WatchEvent, p: list[float], out: list[Said]) -> None:
        lim = self.limits
        rounds = p[0]
        x = {
            "bonus": min(1.0, p[1] / rounds),
            "multiple": min(1.0, p[2] / rounds / lim.multiple_cap),
            "rollback": min(1.0, p[3] / rounds),
        }
        score = float(self.forest.score_one(x))  # type: ignore[no-untyped-call]
        self.forest.learn_one(x)  # type: ignore[no-untyped-call]
        self.windows += 1
        if self.windows > lim.warmup_windows and score > lim.threshold:
            out.append(
                signal(
                    BONUS_ABUSE,
                    f"player:{e.player}",
                    e.at,
                    f"player {e.player}'s last {rounds:.0f} rounds look unlike the "
                    f"population's (half-space trees score {score:.3f})",
                    evidence={"score": score, **x},
                    region=e.region,
                    provider=e.provider,
                    operator=e.operator,
                    currency=e.currency,
                    confidence_permille=int(score * 1000),
                )
            )

    def tick(self, now: int, out: list[Said]) -> None:
        """Windows close on rounds, not on time."""

    def state(self) -> dict[str, Any]:
        """The players' open windows; the forest itself is relearnt after a restart
        (its warm-up is a few thousand windows: minutes of traffic)."""
        return {"players": list(self.players.items()), "windows": 0}

    def load(self, state: Mapping[str, Any]) -> None:
        self.players = OrderedDict((k, list(v)) for k, v in state.get("players", []))
