"""In-memory batch-file import progress (tests)."""

from __future__ import annotations

from datetime import datetime


class MemoryImportProgress:
    def __init__(self) -> None:
        self.files: dict[str, tuple[int, dict[str, int], bool]] = {}

    def committed(self, file_id: str) -> int:
        return self.files.get(file_id, (0, {}, False))[0]

    def record(
        self,
        file_id: str,
        name: str,
        provider: str,
        lines: int,
        counts: dict[str, int],
        at: datetime,
        *,
        finished: bool,
    ) -> None:
        self.files[file_id] = (lines, dict(counts), finished)

    def close(self) -> None:
        """Nothing held: nothing to release."""
