"""Money code never goes through a float: no ``float(...)`` call, no float literal in a sum.

Money is int minor units (Decimal for rates and major-unit text); one float on the way turns
10.10 into 10.099999999999999 and a statement stops adding up. ruff cannot ban a builtin
(flake8-tidy-imports' banned-api matches imported names only, not ``float``), so this test
reads the money packages' syntax trees instead.

A float literal is allowed only where it is plainly a duration: the value bound to a name or
keyword argument ending in ``_s`` (``submit_timeout_s: float = 5.0``) or called ``timeout``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tally

SRC = Path(tally.__file__).resolve().parent

# The packages that compute with money (amounts, balances, rates, settlement figures).
MONEY_PACKAGES = (
    "kernel",
    "ledger",
    "settlement",
    "providers",
    "ingest",
    "exports",
    "payouts",
    "adapters/payouts",
    "lifecycle",
    "reconciliation",
)

# Packages left out, and why: none of them computes an amount.
#   app (metrics: latencies and rates for Prometheus), simulation (seeded random activity,
#   events per second), entrypoints (progress and throughput printed by the CLI), and bench/
#   (timings), risk (the detectors' statistics: bands, rates, forecasts; an alert's money
#   at risk is the kernel's integer minor units). They hand money to the packages above as
#   ints, never as floats.

# (file relative to src/tally, enclosing function or class path) -> why a float is fine there.
ALLOWED: dict[tuple[str, str], str] = {}


def _duration_name(name: str | None) -> bool:
    return name is not None and (name.endswith("_s") or name == "timeout")


def float_uses(source: str, filename: str = "<source>") -> list[tuple[int, str, str]]:
    """Every float call or non-duration float literal: (line, enclosing scope, what)."""
    tree = ast.parse(source, filename)
    found: list[tuple[int, str, str]] = []

    def visit(node: ast.AST, scope: str, duration: bool) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            scope = f"{scope}.{node.name}" if scope else node.name
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "float"
        ):
            found.append((node.lineno, scope, "float(...) call"))
        if isinstance(node, ast.Constant) and isinstance(node.value, float) and not duration:
            found.append((node.lineno, scope, f"float literal {node.value!r}"))
        for child in ast.iter_child_nodes(node):
            # Only the bound value itself is a duration, not what a call inside it computes.
            visit(child, scope, _binds_duration(node, child))

    visit(tree, "", False)
    return found


def _binds_duration(parent: ast.AST, child: ast.AST) -> bool:
    """Whether ``child`` is the value ``parent`` binds to a duration's name."""
    if isinstance(parent, ast.AnnAssign) and child is parent.value:
        target = parent.target
        return isinstance(target, ast.Name) and _duration_name(target.id)
    if isinstance(parent, ast.Assign) and child is parent.value:
        return all(isinstance(t, ast.Name) and _duration_name(t.id) for t in parent.targets)
    if isinstance(parent, ast.keyword):
        return _duration_name(parent.arg)
    return False


def test_the_money_packages_never_call_float_nor_compute_with_a_float_literal() -> None:
    offences: list[str] = []
    for package in MONEY_PACKAGES:
        for path in sorted((SRC / package).rglob("*.py")):
            relative = path.relative_to(SRC).as_posix()
            for line, scope, what in float_uses(path.read_text(encoding="utf-8"), relative):
                if (relative, scope) not in ALLOWED:
                    offences.append(f"{relative}:{line} in {scope or '<module>'}: {what}")
    assert offences == [], "money must not pass through a float:\n" + "\n".join(offences)


def test_every_allowed_place_still_exists_and_gives_its_reason() -> None:
    for (relative, _scope), reason in ALLOWED.items():
        assert (SRC / relative).is_file(), relative
        assert reason.strip(), relative


def test_the_check_finds_a_float_call_and_float_arithmetic() -> None:
    source = (
        "def fee(amount):\n"
        "    share = float(amount) * 0.015\n"
        "    amount += 0.5\n"
        "    return round(share)\n"
    )
    assert float_uses(source) == [
        (2, "fee", "float(...) call"),
        (2, "fee", "float literal 0.015"),
        (3, "fee", "float literal 0.5"),
    ]


def test_the_check_lets_durations_in_seconds_through() -> None:
    source = (
        "class Limits:\n"
        "    submit_timeout_s: float = 5.0\n"
        "idle_wait_s = 0.05\n"
        "def wait(queue):\n"
        "    return queue.get(timeout=0.5)\n"
    )
    assert float_uses(source) == []


def test_the_check_does_not_let_a_literal_through_inside_a_duration_call() -> None:
    # A duration's value may be a call; a float literal inside its arguments is still a float.
    source = "timeout_s = round(amount * 0.1)\n"
    assert float_uses(source) == [(1, "", "float literal 0.1")]
