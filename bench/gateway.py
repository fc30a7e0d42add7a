"""The gateway benchmark: signed provider callbacks per second over real HTTP, and latency.

A child process serves the gateway (uvicorn with httptools and uvloop) on a fresh embedded
store with funded players. This process drives it open-loop: requests are scheduled at a
steady rate and each one's latency runs from its *scheduled* time to its answer, so a
slow server cannot hide its queueing (no coordinated omission). Each request is a
SoftSwiss ``/play`` with a bet and a win that ends the round, signed with HMAC-SHA256:
three events (bet, win, round end), one or two ledger transfers (a zero win moves
nothing), one event-log append and a balance in the answer. The events per second
reported are those found in the log after the run.

The naive baseline is the same gateway with one callback per batch, and one database
transaction per callback for the ledger (batch size 1) and for the event log (no group
commit).

The load generator writes pre-built HTTP/1.1 requests on keep-alive connections with
asyncio streams: an HTTP client library would spend more of the machine's two cores
than the server it measures.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import child_env, percentile

TARGET_REQUESTS_PER_S = 3_000
TARGET_P99_MS = 25.0
AUTH_TOKEN = "bench-auth-token"  # a throwaway token for a throwaway store
FUNDING = 10**12  # minor units per player: no bet is refused for funds in the run
STARTUP_TIMEOUT_S = 60.0
FRONTS = 2  # HTTP front processes (ADR 0017): one per core of the 2-core machine


@dataclass(frozen=True, slots=True)
class Config:
    rate: float = TARGET_REQUESTS_PER_S  # requests per second, scheduled
    seconds: float = 20.0
    connections: int = 64
    players: int = 5_000
    naive: bool = False
    fronts: int = FRONTS  # 0: HTTP in the gateway's own process
    port: int = 0  # 0: pick a free one
    seed: int = 1


# -- the server (child process) ---------------------------------------------------------------
def serve(directory: Path, config: Config) -> None:
    import uvicorn

    from tally.adapters.sqlite.events import SqliteEventLog
    from tally.app.bootstrap import build_app, build_input_quarantine, build_wallet_gateway
    from tally.app.runtime import PROMPT_GC_THRESHOLDS, hand_off_promptly, settle_heap
    from tally.app.settings import Settings
    from tally.entrypoints.gateway.app import BATCH_MAX_CALLS, create_gateway_api
    from tally.entrypoints.gateway.fronts import serve_with_fronts
    from tally.events.appender import AppendLimits
    from tally.kernel.limits import LedgerLimits
    from tally.providers.registry import Registry
    from tally.wallet.model import Wallet

    limits = LedgerLimits(batch_max_transfers=1) if config.naive else LedgerLimits()
    batch = 1 if config.naive else BATCH_MAX_CALLS
    settings = Settings(
        data_dir=directory, sqlite_path=directory / "tally.sqlite", ledger_limits=limits
    ).for_gateway()
    tally = build_app(settings).start()
    log = SqliteEventLog(settings.sqlite_path)
    parts = build_wallet_gateway(
        tally,
        quarantine=build_input_quarantine(settings),
        secrets=lambda provider, name: AUTH_TOKEN if name == "auth_token" else None,
        session_key=os.urandom(32),
        registry=Registry.each_protocol_as_itself(["softswiss"]),
        log=log,
        append_limits=AppendLimits(batch_max_events=2) if config.naive else None,
    )
    parts.wallet.open_many(
        [Wallet(f"p{i}", "op1", "EUR", "eu", "store-1") for i in range(config.players)],
        FUNDING,
        "fund",
    )
    api = create_gateway_api(parts.gateway, tally.clock, noop=True, batch_max_calls=batch)
    settle_heap(PROMPT_GC_THRESHOLDS)  # as `tally gateway serve` does once wired
    hand_off_promptly()
    try:
        if config.fronts:
            serve_with_fronts(api, "127.0.0.1", config.port, config.fronts, noop=True)
        else:
            uvicorn.Server(
                uvicorn.Config(
                    api,
                    host="127.0.0.1",
                    port=config.port,
                    loop="uvloop",
                    http="httptools",
                    log_level="warning",
                    access_log=False,
                )
            ).run()
    finally:
        parts.close()
        tally.close()


# -- the load (this process) ------------------------------------------------------------------
def noop_requests(requests: list[bytes]) -> list[bytes]:
    """The same bytes sent to the no-op route instead."""
    return [r.replace(b"POST /providers/softswiss/play ", b"POST /noop ", 1) for r in requests]


def build_requests(config: Config, count: int) -> tuple[list[bytes], int]:
    """The requests as bytes on the wire, and the wallet transfers they should make."""
    from tally.providers.softswiss.client import SoftSwissClient

    client = SoftSwissClient(AUTH_TOKEN)
    rng = random.Random(config.seed)
    out: list[bytes] = []
    transfers = 0
    for i in range(count):
        player = f"p{rng.randrange(config.players)}"
        stake = rng.randrange(10, 10_000)
        win = rng.choice((0, stake * 2))
        transfers += 2 if win else 1  # a zero win moves nothing
        request = client.play(
            player,
            "EUR",
            "acme:BookOfGold",
            f"r{i}",
            [("bet", f"b{i}", stake), ("win", f"w{i}", win)],
            finished=True,
        )
        head = (
            f"POST /providers/softswiss/{request.action} HTTP/1.1\r\n"
            f"Host: bench\r\nContent-Type: application/json\r\n"
            f"X-REQUEST-SIGN: {request.headers['x-request-sign']}\r\n"
            f"Content-Length: {len(request.body)}\r\n\r\n"
        )
        out.append(head.encode() + request.body)
    return out, transfers


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def drive(
    port: int, requests: list[bytes], config: Config, progress: Callable[[int], None]
) -> dict[str, Any]:
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    latencies: list[float] = [0.0] * len(requests)
    statuses: dict[int, int] = {}
    done = 0

    async def connection() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (item := await queue.get()) is not None:
                index, scheduled = item
                writer.write(requests[index])
                status = await _read_response(reader)
                latencies[index] = time.perf_counter() - scheduled
                statuses[status] = statuses.get(status, 0) + 1
                done += 1
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(config.connections)]
    started = time.perf_counter()
    for index in range(len(requests)):
        scheduled = started + index / config.rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((index, scheduled))
        if index % 1_000 == 0:
            progress(done)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - started
    progress(done)
    ms = sorted(x * 1000 for x in latencies)
    second = [(int(i / config.rate), latencies[i] * 1000) for i in range(0, len(requests), 50)]
    return {
        "requests": len(requests),
        "elapsed_s": elapsed,
        "requests_per_s": len(requests) / elapsed,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "latency_ms": {
            "p50": percentile(ms, 0.5),
            "p95": percentile(ms, 0.95),
            "p99": percentile(ms, 0.99),
            "max": ms[-1],
        },
        "latency_samples_ms": second,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the gateway server exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the gateway server did not start in time")


def run(config: Config, progress: Callable[[int], None]) -> dict[str, Any]:
    """One run: a fresh server, the load, then the log and ledger checked for every event."""
    port = config.port or _free_port()
    count = int(config.rate * config.seconds)
    requests, transfers = build_requests(config, count)
    with tempfile.TemporaryDirectory(prefix="tally-bench-gw-") as tmp:
        directory = Path(tmp)
        child = {**asdict(config), "port": port}
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.gateway", str(directory), json.dumps(child)],
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_ready(port, process)
            import uvloop

            # The yardstick first, on the same server: the no-op route at the same rate.
            noop = uvloop.run(drive(port, noop_requests(requests), config, lambda _: None))
            result = uvloop.run(drive(port, requests, config, progress))
        finally:
            process.send_signal(signal.SIGINT)
            try:
                _, errors = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()  # never leave a server behind (its fronts then stop too)
                _, errors = process.communicate()
        with sqlite3.connect(directory / "tally.sqlite") as db:
            (logged,) = db.execute("SELECT COUNT(*) FROM event_log").fetchone()
            (wallet_moves,) = db.execute(
                "SELECT COUNT(*) FROM transfers WHERE code LIKE 'wallet_%'"
            ).fetchone()
    ok = result["statuses"].get("200", 0)
    result.update(
        {
            "noop": {k: noop[k] for k in ("requests_per_s", "latency_ms", "statuses")},
            "ratio_to_noop": result["requests_per_s"] / noop["requests_per_s"],
            "naive": config.naive,
            "config": asdict(config),
            "events_logged": logged,
            "events_per_s": logged / result["elapsed_s"],
            # Every answered callback's events are in the log, none twice: bet, win (a
            # zero win too) and the round's end.
            "events_expected": 3 * ok,
            "wallet_transfers": wallet_moves,
            "wallet_transfers_expected": transfers if ok == count else None,
            "server_errors": errors.decode(errors="replace")[-2_000:] if ok != count else "",
        }
    )
    return result


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (series, bars) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name in ("gateway", "naive"):
        run_ = results.get(name)
        if not run_:
            continue
        points = run_["latency_samples_ms"]
        series.plot([p[0] for p in points], [p[1] for p in points], ".", ms=2, label=name)
    series.axhline(TARGET_P99_MS, color="red", linestyle="dashed", label="p99 target")
    series.set_yscale("log")
    series.set_xlabel("seconds into the run")
    series.set_ylabel("latency (ms, from scheduled send)")
    series.set_title(f"Callbacks at {results['gateway']['config']['rate']:,.0f}/s scheduled")
    series.legend()
    names = [n for n in ("naive", "gateway") if results.get(n)]
    for i, name in enumerate(names):
        lat = results[name]["latency_ms"]
        for j, q in enumerate(("p50", "p95", "p99")):
            bars.bar(i + (j - 1) * 0.25, lat[q], 0.25, color=f"C{j}", label=q if i == 0 else None)
    bars.axhline(TARGET_P99_MS, color="red", linestyle="dashed")
    bars.set_xticks(
        range(len(names)), [f"{n}\n{results[n]['requests_per_s']:,.0f} req/s" for n in names]
    )
    bars.set_yscale("log")
    bars.set_ylabel("ms")
    bars.set_title("Latency percentiles")
    bars.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), Config(**json.loads(sys.argv[2])))
