"""Each database's connections are opened by one module, so they all get its settings.

A store that called ``sqlite3.connect`` itself got none of the WAL, page cache, busy
timeout and per-file writer lock of ``adapters/sqlite/connection.py``; one that called
``psycopg.connect`` could miss the planner settings and time zone of
``adapters/postgres/connection.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tally"
OPENERS = {
    "sqlite3.connect": "adapters/sqlite/connection.py",
    "psycopg.connect": "adapters/postgres/connection.py",
    "psycopg.Connection.connect": "adapters/postgres/connection.py",
    "psycopg.AsyncConnection.connect": "adapters/postgres/connection.py",
    "psycopg_pool.ConnectionPool": "adapters/postgres/connection.py",
    "psycopg_pool.AsyncConnectionPool": "adapters/postgres/connection.py",
}


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def _opened(path: Path) -> list[str]:
    """The database openers ``path`` calls (names as imported, ``as`` aliases resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({a.asname: a.name for a in node.names if a.asname})
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    return [
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and (name := _dotted(node.func, aliases)) in OPENERS
    ]


def test_every_database_connection_is_opened_by_the_connection_module_of_its_database() -> None:
    offenders = sorted(
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in PACKAGE.rglob("*.py")
        for name in _opened(path)
        if path.relative_to(PACKAGE).as_posix() != OPENERS[name]
    )
    assert offenders == []


def test_the_check_sees_a_store_that_opens_its_own_connection(tmp_path: Path) -> None:
    module = tmp_path / "store.py"
    module.write_text(
        "import sqlite3\nimport psycopg as pg\nfrom psycopg_pool import ConnectionPool\n"
        "a = sqlite3.connect('x')\nb = pg.connect('dsn')\nc = ConnectionPool('dsn')\n",
        encoding="utf-8",
    )
    assert _opened(module) == ["sqlite3.connect", "psycopg.connect", "psycopg_pool.ConnectionPool"]
