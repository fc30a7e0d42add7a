"""Shared benchmark helpers: memory readings, percentiles, machine facts, results files,
child interpreters."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux /proc; else the peak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }


def save(results: dict[str, Any], out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{name}-{stamp}.json"
    text = json.dumps(results, indent=2, sort_keys=True, default=str)
    path.write_text(text + "\n")
    (out_dir / f"{name}-latest.json").write_text(text + "\n")
    return path


Report = Callable[[int], None]

# The folder holding the ``bench`` package (the repository's root).
ROOT = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    """The environment of a child run: this one, with the repository's root first on
    ``PYTHONPATH``, so ``python -m bench.<name>`` finds the benchmarks from any directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def child_main(
    argv: list[str],
    runs: Mapping[str, Callable[[Any, Report], dict[str, Any]]],
    config_type: Callable[..., Any],
) -> None:
    """``python -m bench.<name> RUN CONFIG_JSON``: one run, JSON on stdout,
    progress lines on stderr (logs go there too)."""
    import structlog

    run, config = argv[0], config_type(**json.loads(argv[1]))
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))

    def report(count: int) -> None:
        # One write per line: threads of a run may report concurrently.
        os.write(2, f"progress {count}\n".encode())

    print(json.dumps(runs[run](config, report)))


def run_child(module: str, run: str, config: Any, on_progress: Report) -> dict[str, Any]:
    """One run of ``module`` in a fresh interpreter, so its figures are its own."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, run, json.dumps(asdict(config))],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None and process.stdout is not None
    # The answer is read beside the progress lines: a large one would otherwise fill the
    # pipe and the child would wait on it forever.
    answer: list[str] = []
    stdout = process.stdout
    reader = threading.Thread(target=lambda: answer.append(stdout.read()))
    reader.start()
    errors: list[str] = []
    for line in process.stderr:
        if line.startswith("progress "):
            on_progress(int(line.split()[1]))
        else:
            errors.append(line)
    reader.join()
    out = answer[0] if answer else ""
    if process.wait() != 0:
        raise RuntimeError(f"benchmark run {run} of {module} failed:\n{''.join(errors)}")
    result: dict[str, Any] = json.loads(out)
    return result
