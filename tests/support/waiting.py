"""Waiting in tests for what another thread or process brings about."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    what: str, check: Callable[[], bool], timeout: float = 20.0, step: float = 0.1
) -> None:
    """Return once ``check()`` holds; fail the test, naming ``what``, after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)
