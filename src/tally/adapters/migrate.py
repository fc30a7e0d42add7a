"""A small forward-only migration runner shared by the SQL stores.

Each migration is a numbered SQL script; applied versions are recorded in
``schema_migrations`` in the same transaction as the script itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


def load_migrations(package: str) -> list[Migration]:
    """Every ``NNN_name.sql`` file shipped in ``package``, in version order."""
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    assert versions == list(range(1, len(found) + 1)), f"migration numbers have gaps: {versions}"
    return found
