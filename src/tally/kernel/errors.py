"""Operational failures, split into retryable and permanent.

Rejections of bad input are *values* (result codes), not exceptions; these
exceptions are for the world failing around us (a database gone, a queue full).
"""

from __future__ import annotations


class TallyError(Exception):
    """Base of all operational failures raised by Tally."""

    retryable: bool = False


class RetryableError(TallyError):
    """The same call may succeed later (lock timeout, overload, connection lost)."""

    retryable = True


class PermanentError(TallyError):
    """The same call will fail again until something is fixed."""


class Overloaded(RetryableError):
    """A bounded queue is full; the caller should back off and retry."""


class StoreUnavailable(RetryableError):
    """The backing store could not be reached."""


class ConfigurationError(PermanentError):
    """Settings are missing or inconsistent."""
