"""Login throttling: how many attempts a username, a source, or the two together get.

Pure: the store applies these rules inside one transaction, so that checking and
counting an attempt is one atomic step (parallel guesses cannot all read the same
count). An attempt is counted *before* the password is checked, and given back once
it succeeds: at most ``attempts`` guesses are ever evaluated before a wait begins.

Nothing here locks an account. A wait is a window during which attempts on one key
are refused unseen; it grows with each attempt counted after it, up to a cap. The
keys are built from the username as typed, whether or not such a user exists, so the
answers tell nothing about which usernames exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    # Attempts counted before a wait begins (the attempt that reaches it is evaluated).
    attempts: int
    # The first wait; each attempt counted after it doubles it, up to max_wait_s.
    first_wait_s: int
    max_wait_s: int
    # The count starts again after this long without an attempt.
    forget_after_s: int


@dataclass(frozen=True, slots=True)
class ThrottleKey:
    """What is counted: one username, one source address, or a username from a source.

    ``username`` is kept apart so that an admin can lift every wait of a username.
    """

    key: str
    username: str

    @classmethod
    def user(cls, username: str) -> ThrottleKey:
        return cls(f"user:{username}", username)

    @classmethod
    def source(cls, source: str) -> ThrottleKey:
        return cls(f"source:{source}", "")

    @classmethod
    def user_from(cls, username: str, source: str) -> ThrottleKey:
        # A source is an address (no "|"), so the key parses back unambiguously.
        return cls(f"user-source:{source}|{username}", username)


@dataclass(frozen=True, slots=True)
class ThrottleState:
    attempts: int
    last_at: datetime
    wait_until: datetime | None = None

    def waiting(self, now: datetime) -> bool:
        return self.wait_until is not None and self.wait_until > now


@dataclass(frozen=True, slots=True)
class Attempt:
    """What taking an attempt came to."""

    granted: bool
    # Granted: None. Refused: the earliest instant every key lets an attempt through.
    retry_at: datetime | None = None
    # Keys whose wait this very attempt began (for the audit trail).
    waits_begun: tuple[str, ...] = ()


def counted(state: ThrottleState | None, rule: ThrottleRule, now: datetime) -> ThrottleState:
    """The state after one more attempt is counted at ``now`` (not waiting)."""
    attempts = 0
    if state is not None and now - state.last_at < timedelta(seconds=rule.forget_after_s):
        attempts = state.attempts
    attempts += 1
    wait_until = None
    over = attempts - rule.attempts
    if over >= 0:
        # Doubling from the first wait; the exponent is capped so the number stays small.
        wait = min(rule.max_wait_s, rule.first_wait_s * 2 ** min(over, 32))
        wait_until = now + timedelta(seconds=wait)
    return ThrottleState(attempts, now, wait_until)


def given_back(state: ThrottleState) -> ThrottleState:
    """One counted attempt returned (it succeeded); a wait it began is lifted."""
    return ThrottleState(max(0, state.attempts - 1), state.last_at, None)


def take(
    states: dict[str, ThrottleState | None],
    rules: list[tuple[ThrottleKey, ThrottleRule]],
    now: datetime,
) -> tuple[Attempt, dict[str, ThrottleState]]:
    """Decide one attempt over every key at once: refused if any key is waiting (and
    then nothing is counted), else counted on every key. Returns the new states."""
    waiting = [s.wait_until for s in states.values() if s is not None and s.waiting(now)]
    if waiting:
        return Attempt(False, max(w for w in waiting if w is not None)), {}
    after = {k.key: counted(states.get(k.key), rule, now) for k, rule in rules}
    begun = tuple(k for k, s in after.items() if s.wait_until is not None)
    return Attempt(True, None, begun), after
