"""The installed package stands alone: the benchmarks (``bench/``) sit above it, never in it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tally"
# Tools, not product: the benchmarks and their charting library are not installed with tally.
FORBIDDEN = ("bench", "tally.benchmarks", "matplotlib")


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_module_of_the_installed_package_imports_the_benchmarks_or_matplotlib() -> None:
    offenders = sorted(
        f"{path.relative_to(PACKAGE.parent)}: {name}"
        for path in PACKAGE.rglob("*.py")
        for name in _imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    )
    assert offenders == []


def test_the_tally_command_has_no_bench_command() -> None:
    from typer.testing import CliRunner

    from tally.entrypoints.cli import app

    result = CliRunner().invoke(app, ["bench", "--help"])
    assert result.exit_code != 0
    assert "No such command" in result.output


def test_the_import_contracts_in_pyproject_are_kept() -> None:
    """Imports point down (kernel < ledger < events < contexts < adapters < app <
    entrypoints) and pure code imports no I/O library: the [tool.importlinter] contracts."""
    from importlinter.cli import lint_imports

    config = PACKAGE.parents[1] / "pyproject.toml"
    assert lint_imports(config_filename=str(config), no_cache=True, no_logo=True) == 0
