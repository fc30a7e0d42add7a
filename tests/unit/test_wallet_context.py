"""The wallet is a context below the providers: the gateway imports it, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

WALLET = Path(__file__).resolve().parents[2] / "src" / "tally" / "wallet"
# Above the wallet: the protocol translation, the stores, the composition root, the faces.
ABOVE = ("tally.providers", "tally.adapters", "tally.app", "tally.entrypoints")


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_module_of_the_wallet_context_imports_the_providers_or_anything_above() -> None:
    modules = sorted(WALLET.glob("*.py"))
    offenders = sorted(
        f"{path.name}: {name}"
        for path in modules
        for name in _imported_modules(path)
        if any(name == a or name.startswith(a + ".") for a in ABOVE)
    )
    assert len(modules) >= 3  # model, ports, service: the context is where it is said to be
    assert offenders == []
