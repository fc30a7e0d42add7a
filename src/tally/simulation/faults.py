"""Seeded delivery faults: duplicates, reordering, rollbacks first, late deliveries.

Pure: takes the events in the order they happened and returns the order a flaky network
and a flaky provider would deliver them in. Every knob is off (0) by default.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Faults:
    duplicate: float = 0.0  # share of events delivered a second time, later
    reorder_window: int = 0  # events shuffled within windows of this many
    rollback_first: float = 0.0  # share of rollbacks delivered before their original
    late: float = 0.0  # share of events held back until after their period closed

    @classmethod
    def all_on(cls) -> Faults:
        return cls(duplicate=0.03, reorder_window=20, rollback_first=0.5, late=0.02)


def deliver(
    events: Sequence[T],
    faults: Faults,
    rng: random.Random,
    *,
    ref_of: Callable[[T], str],
    key_of: Callable[[T], str],
) -> tuple[list[T], list[T]]:
    """(on time, late): the order of delivery before and after the period close."""
    stream = list(events)
    if faults.rollback_first:
        position = {key_of(e): i for i, e in enumerate(stream)}
        for i, event in enumerate(list(stream)):
            ref = ref_of(event)
            if ref and ref in position and rng.random() < faults.rollback_first:
                j = position[ref]
                stream[i], stream[j] = stream[j], stream[i]
                position[key_of(stream[i])], position[key_of(stream[j])] = i, j
    if faults.reorder_window > 1:
        w = faults.reorder_window
        for start in range(0, len(stream), w):
            window = stream[start : start + w]
            rng.shuffle(window)
            stream[start : start + w] = window
    on_time: list[T] = []
    late: list[T] = []
    for event in stream:
        (late if rng.random() < faults.late else on_time).append(event)
    for bucket in (on_time, late):
        for event in list(bucket):
            if rng.random() < faults.duplicate:
                bucket.insert(rng.randrange(len(bucket) + 1), event)
    return on_time, late
