"""In-memory wallet rollback marks: the reference fake for the wallet marks contract."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime


class MemoryWalletMarks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._marks: dict[str, str] = {}

    def mark(self, original: str, rollback_key: str, at: datetime) -> None:
        with self._lock:
            self._marks.setdefault(original, rollback_key)

    def marked(self, originals: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return {o: self._marks[o] for o in originals if o in self._marks}

    def close(self) -> None:
        """Nothing held: nothing to release."""
