"""A small forward-only migration runner shared by the SQL stores.

Each component (ledger, events, audit, ...) owns its own numbered scripts named
``<component>_NNN_<name>.sql`` in the adapter's migrations package, so components
evolve independently. Applied versions are recorded per component in
``schema_migrations``, in the same transaction as the script itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT NOT NULL, "
    "version INTEGER NOT NULL, name TEXT NOT NULL, PRIMARY KEY (component, version))"
)


@dataclass(frozen=True, slots=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str


_NAME = re.compile(r"^([a-z]+)_(\d{3})_([a-z0-9_]+)\.sql$")


def load_migrations(package: str, component: str) -> list[Migration]:
    """Every ``<component>_NNN_name.sql`` file shipped in ``package``, in version order."""
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _NAME.match(entry.name)
        if match and match.group(1) == component:
            found.append(
                Migration(component, int(match.group(2)), match.group(3), entry.read_text("utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    assert versions == list(range(1, len(found) + 1)), f"{component} migrations: {versions}"
    assert found, f"no migrations for component {component!r} in {package}"
    return found
