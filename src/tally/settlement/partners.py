"""Partner trees and differential commissions.

An operator's agents form a tree (headquarters > sub-headquarters > distributor > store).
Each agent has a rolling rate on turnover and a losing rate on players' net loss; an agent
earns the difference between its own rate and its child's on that child's subtree, and a
store earns its full rate on its own players. Up any path the shares add up to the top
agent's rate. Moves of an agent to another parent take effect from a given instant.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tally.kernel.clock import EPOCH
from tally.kernel.money import Rounding, round_minor


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent's rates from ``effective_from`` on (a later version replaces them)."""

    id: str
    operator: str
    rolling_rate: Decimal  # on turnover
    losing_rate: Decimal  # on players' net loss (GGR)
    effective_from: datetime = EPOCH


@dataclass(frozen=True, slots=True)
class Placement:
    """From ``effective_from`` on, ``agent`` sits under ``parent`` (None: the top)."""

    agent: str
    parent: str | None
    effective_from: datetime


class TreeError(ValueError):
    """A tree that cannot be used: unknown agent, a cycle, rates that shrink upwards."""


@dataclass(frozen=True, slots=True)
class PartnerTree:
    """An operator's agents (every version of their rates) and their placements over time."""

    agents: Sequence[Agent]
    placements: Sequence[Placement]
    # Each agent's own versions and placements, in the given order: lookups per event scan
    # a handful of entries instead of the whole tree.
    _versions: dict[str, list[Agent]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _placed: dict[str, list[Placement]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    # Every instant at which some rate or placement changes, in order.
    _changes: list[datetime] = field(init=False, repr=False, compare=False, default_factory=list)

    def __post_init__(self) -> None:
        for version in self.agents:
            self._versions.setdefault(version.id, []).append(version)
        for placement in self.placements:
            self._placed.setdefault(placement.agent, []).append(placement)
        instants = {a.effective_from for a in self.agents}
        instants.update(p.effective_from for p in self.placements)
        self._changes.extend(sorted(instants))

    def epoch(self, at: datetime) -> int:
        """Which version of the whole tree holds at ``at``: between two changes nothing
        differs, so a path found for one instant holds for every instant of its epoch."""
        return bisect.bisect_right(self._changes, at)

    def agent_at(self, agent: str, at: datetime) -> Agent | None:
        found: Agent | None = None
        for version in self._versions.get(agent, ()):
            if version.effective_from <= at and (
                found is None or version.effective_from >= found.effective_from
            ):
                found = version
        return found

    def agent_ids(self) -> set[str]:
        return {a.id for a in self.agents}

    def parent_of(self, agent: str, at: datetime) -> str | None:
        latest: Placement | None = None
        for p in self._placed.get(agent, ()):
            if p.effective_from <= at and (
                latest is None or p.effective_from >= latest.effective_from
            ):
                latest = p
        if latest is None:
            raise TreeError(f"agent {agent} has no place in the tree at {at.isoformat()}")
        return latest.parent

    def path(self, leaf: str, at: datetime) -> list[Agent]:
        """The agents from ``leaf`` up to the top, as placed at ``at``."""
        path: list[Agent] = []
        seen: set[str] = set()
        current: str | None = leaf
        while current is not None:
            if current in seen:
                raise TreeError(f"cycle in the partner tree at {current}")
            seen.add(current)
            agent = self.agent_at(current, at)
            if agent is None:
                raise TreeError(f"unknown agent {current} at {at.isoformat()}")
            path.append(agent)
            current = self.parent_of(current, at)
        return path

    def subtree(self, root: str, at: datetime) -> set[str]:
        """``root`` and every agent beneath it at ``at``: what a partner user may see."""
        return {
            a
            for a in self.agent_ids()
            if self.agent_at(a, at) is not None and root in {p.id for p in self.path(a, at)}
        }


def validate_path(path: Sequence[Agent]) -> list[str]:
    problems: list[str] = []
    for child, parent in itertools.pairwise(path):
        if parent.rolling_rate < child.rolling_rate:
            problems.append(f"{parent.id}'s rolling rate is below its child {child.id}'s")
        if parent.losing_rate < child.losing_rate:
            problems.append(f"{parent.id}'s losing rate is below its child {child.id}'s")
    return problems


def share_rates(path: Sequence[Agent]) -> dict[str, tuple[Decimal, Decimal]]:
    """Each agent's own part of the rolling and losing rates on activity at ``path[0]``:
    its rate less its child's on the path."""
    problems = validate_path(path)
    if problems:
        raise TreeError("; ".join(problems))
    rates: dict[str, tuple[Decimal, Decimal]] = {}
    below_rolling = Decimal(0)
    below_losing = Decimal(0)
    for agent in path:
        rates[agent.id] = (agent.rolling_rate - below_rolling, agent.losing_rate - below_losing)
        below_rolling, below_losing = agent.rolling_rate, agent.losing_rate
    return rates


def exact_shares(path: Sequence[Agent], turnover: int, net_loss: int) -> dict[str, Decimal]:
    """Each agent's commission on activity at ``path[0]``, exact (not yet rounded)."""
    return {
        agent: rolling * turnover + losing * net_loss
        for agent, (rolling, losing) in share_rates(path).items()
    }


def commission_shares(
    path: Sequence[Agent], turnover: int, net_loss: int, mode: Rounding = Rounding.HALF_EVEN
) -> dict[str, int]:
    """Each agent's commission in minor units, rounded once per agent.

    Rounding each share once from exact totals keeps running accruals telescoping;
    the shares' sum may differ from the top rate's figure by at most one unit per agent.
    """
    return {
        agent: round_minor(exact, mode)
        for agent, exact in exact_shares(path, turnover, net_loss).items()
    }
