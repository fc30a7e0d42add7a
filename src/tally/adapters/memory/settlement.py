"""In-memory settlement configuration documents (the reference fake)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any


class MemoryConfigDocuments:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[tuple[str, str], dict[str, Any]] = {}
        self._order: list[tuple[str, str]] = []

    def get(self, kind: str, key: str) -> Mapping[str, Any] | None:
        with self._lock:
            found = self._docs.get((kind, key))
            return copy.deepcopy(found) if found is not None else None

    def insert(self, kind: str, key: str, document: Mapping[str, Any], now: datetime) -> None:
        with self._lock:
            if (kind, key) in self._docs:
                raise KeyError(f"{kind} {key} exists")
            self._docs[(kind, key)] = copy.deepcopy(dict(document))
            self._order.append((kind, key))

    def all(self, kind: str) -> list[Mapping[str, Any]]:
        with self._lock:
            return [copy.deepcopy(self._docs[k]) for k in self._order if k[0] == kind]

    def revision(self) -> int:
        with self._lock:
            return len(self._order)
