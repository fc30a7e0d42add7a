"""What settlement needs from storage."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol


class ConfigDocuments(Protocol):
    """Versioned settlement configuration as JSON documents, append-only.

    ``kind`` is one of ``contract``, ``agent``, ``placement``, ``fx_rate``; ``key``
    identifies one version. Documents are never updated or deleted: a change is a new
    version with its own effective instant. Every insert bumps ``revision()``, which
    lets in-memory caches notice a change made by any process.
    """

    def get(self, kind: str, key: str) -> Mapping[str, Any] | None: ...

    def insert(self, kind: str, key: str, document: Mapping[str, Any], now: datetime) -> None: ...

    def all(self, kind: str) -> list[Mapping[str, Any]]: ...

    def revision(self) -> int: ...
