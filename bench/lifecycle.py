"""The data lifecycle benchmark (ADR 0023): archiving and verifying a partition, and an
online backup of a large SQLite file while the gateway serves callbacks.

1. Archive and verify: a SQLite file with ``rows`` transfers in one month is archived
   (read in key order, encoded, sealed, gzip'd, signed) and the archive verified offline
   (every row decoded, re-sealed, compared), each timed in rows per second. The naive
   baseline does the same job the obvious way on a sample: a JSON object per row with
   sorted keys, gzip level 6, a SHA-256 chain over hex strings, and ``json.loads`` of
   each line to verify.
2. Backup under load: the gateway benchmark's server (a child process, real HTTP) runs
   on a file grown beforehand to ``backup_rows`` transfers; this process drives it at
   ``rate`` callbacks/s, open-loop, and after a quiet stretch runs ``tally backup create``
   in a process of its own, once with the backup API and once with VACUUM INTO. The
   gateway's latency percentiles are reported for the callbacks scheduled while each
   backup ran, beside those scheduled while none did (after the server's first seconds,
   which are its warm-up, and after the backups).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import child_env, percentile

TARGET_ROWS_PER_S = 200_000
TARGET_P99_MS = 50.0
MONTH = datetime(2026, 11, 1, tzinfo=UTC)
TALLY = (sys.executable, "-m", "tally.entrypoints.cli")  # the command, as an operator runs it


@dataclass(frozen=True, slots=True)
class Config:
    rows: int = 1_000_000
    naive_sample: int = 100_000
    backup_rows: int = 1_000_000
    rate: float = 2_000.0
    seconds: float = 60.0  # long enough for both backups of the default file under load
    warmup_s: float = 5.0  # the server's first seconds under load, left out of every window
    quiet_s: float = 12.0  # the backups start this long into the load
    players: int = 5_000
    connections: int = 64


# -- a large ledger file, grown quickly -------------------------------------------------------


def grow_ledger(path: Path, rows: int) -> None:
    """``rows`` transfers of 1 between two accounts in November 2026, with the balances
    they make (so the file passes the backup's ledger checks)."""
    from tally.adapters.sqlite.ledger import SqliteLedgerStore
    from tally.ledger.model import Account, OwnerKind

    store = SqliteLedgerStore(path, synchronous="OFF")
    try:
        store.create_accounts(
            [
                Account("bench:from:EUR", OwnerKind.PLATFORM, "bench-from", "EUR", "bench"),
                Account("bench:to:EUR", OwnerKind.PLATFORM, "bench-to", "EUR", "bench"),
            ],
            MONTH,
        )
    finally:
        store.close()
    base = int(MONTH.timestamp() * 1_000_000)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    step = 100_000
    for start in range(0, rows, step):
        conn.executemany(
            "INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount,"
            " currency, code, occurred_at, recorded_at, event_ref)"
            " VALUES (?, 'single', 'bench:from:EUR', 'bench:to:EUR', 1, 'EUR', 'bench', ?, ?, ?)",
            (
                (f"bench-{i:09d}", base + i * 1_000, base + i * 1_000 + 7, f"bench:{i}")
                for i in range(start, min(rows, start + step))
            ),
        )
    conn.execute(
        "UPDATE account_balances SET debits_posted = debits_posted + ? WHERE num ="
        " (SELECT num FROM account_definitions WHERE id = 'bench:from:EUR')",
        (rows,),
    )
    conn.execute(
        "UPDATE account_balances SET credits_posted = credits_posted + ? WHERE num ="
        " (SELECT num FROM account_definitions WHERE id = 'bench:to:EUR')",
        (rows,),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


# -- 1. archive and verify ---------------------------------------------------------------------


def archive_and_verify(config: Config, directory: Path) -> dict[str, Any]:
    from tally.adapters.archive_dir import ArchiveDirReading, ArchiveDirSink
    from tally.adapters.sqlite.lifecycle import SqlitePartitionSource
    from tally.kernel.clock import SystemClock
    from tally.lifecycle.archive import ROWS, Partition
    from tally.lifecycle.seal import TRANSFERS, Period
    from tally.lifecycle.service import ArchiveService
    from tally.security.signing import Signer, new_private_key_pem

    db = directory / "archive-source.sqlite"
    grow_ledger(db, config.rows)
    signer = Signer(new_private_key_pem())
    service = ArchiveService(signer.sign, signer.public_pem(), SystemClock())
    period = Period.containing(MONTH, "month")
    partition = Partition("transfers", period.name, period.start, period.end)
    out = directory / "archive"
    started = time.perf_counter()
    done = service.archive(SqlitePartitionSource(db), TRANSFERS, partition, ArchiveDirSink(out))
    archived_s = time.perf_counter() - started
    assert done.seal.rows >= config.rows, done.seal.rows
    started = time.perf_counter()
    check = service.verify(ArchiveDirReading(out), signer.public_pem())
    verified_s = time.perf_counter() - started
    assert check.ok, check.problems
    rows = done.seal.rows
    naive = naive_archive(db, min(config.naive_sample, rows), directory / "naive.jsonl.gz")
    return {
        "rows": rows,
        "sqlite_mb": db.stat().st_size / 1e6,
        "archive_mb": sum(p.stat().st_size for p in out.iterdir()) / 1e6,
        "rows_file_mb": (out / ROWS).stat().st_size / 1e6,
        "archive_s": archived_s,
        "verify_s": verified_s,
        "archive_rows_per_s": rows / archived_s,
        "verify_rows_per_s": rows / verified_s,
        "naive": naive,
        "ratio_archive_to_naive": (rows / archived_s) / naive["archive_rows_per_s"],
        "ratio_verify_to_naive": (rows / verified_s) / naive["verify_rows_per_s"],
    }


def naive_archive(db: Path, rows: int, out: Path) -> dict[str, Any]:
    """The obvious way: dicts, sorted keys, gzip 6, a SHA-256 chain over hex strings."""
    from tally.lifecycle.seal import TRANSFERS

    names = TRANSFERS.names
    conn = sqlite3.connect(db)
    started = time.perf_counter()
    head = "0" * 64
    with gzip.open(out, "wb", compresslevel=6) as f:
        for row in conn.execute(
            f"SELECT {', '.join(names)} FROM transfers ORDER BY seq LIMIT ?", (rows,)
        ):
            line = json.dumps(dict(zip(names, row, strict=True)), sort_keys=True)
            head = hashlib.sha256((head + line).encode()).hexdigest()
            f.write(line.encode() + b"\n")
    archived = time.perf_counter() - started
    conn.close()
    started = time.perf_counter()
    check = "0" * 64
    sums: dict[str, int] = {}
    with gzip.open(out, "rb") as f:
        for raw in f:
            line = raw.decode().rstrip("\n")
            check = hashlib.sha256((check + line).encode()).hexdigest()
            r = json.loads(line)
            sums[r["currency"]] = sums.get(r["currency"], 0) + r["amount"]
    verified = time.perf_counter() - started
    assert check == head
    return {
        "rows": rows,
        "archive_rows_per_s": rows / archived,
        "verify_rows_per_s": rows / verified,
    }


# -- 2. backup under load ----------------------------------------------------------------------


async def drive(port: int, requests: list[bytes], rate: float, connections: int) -> list[float]:
    """Open-loop load (bench/gateway.py's way); each request's latency from its scheduled
    time, in ms, by request index (scheduled at ``index / rate`` seconds)."""
    from bench.gateway import _read_response

    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    latencies = [0.0] * len(requests)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (item := await queue.get()) is not None:
                index, scheduled = item
                writer.write(requests[index])
                status = await _read_response(reader)
                assert status == 200, status
                latencies[index] = (time.perf_counter() - scheduled) * 1000
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    started = time.perf_counter()
    for index in range(len(requests)):
        scheduled = started + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((index, scheduled))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies


def _backups(
    directory: Path, env: dict[str, str], windows: dict[str, tuple[float, float]], t0: list[float]
) -> None:
    """Run each method's ``tally backup create`` in a process of its own, one after the
    other; record when each ran (seconds from the load's start)."""
    for method in ("api", "vacuum"):
        out = directory / f"backup-{method}"
        began = time.perf_counter() - t0[0]
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tally.entrypoints.cli",
                "backup",
                "create",
                "--out",
                str(out),
                "--method",
                method,
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        windows[method] = (began, time.perf_counter() - t0[0])
        time.sleep(2.0)


def backup_under_load(config: Config, directory: Path) -> dict[str, Any]:
    import uvloop

    from bench import gateway as gw

    data = directory / "gw"
    data.mkdir()
    grow_ledger(data / "tally.sqlite", config.backup_rows)
    file_mb = (data / "tally.sqlite").stat().st_size / 1e6
    gconfig = gw.Config(
        rate=config.rate,
        seconds=config.seconds,
        connections=config.connections,
        players=config.players,
    )
    port = gw._free_port()
    requests, _ = gw.build_requests(gconfig, int(config.rate * config.seconds))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.gateway",
            str(data),
            json.dumps({**asdict(gconfig), "port": port}),
        ],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    env = {
        **child_env(),
        "TALLY_DATA_DIR": str(data),
        "TALLY_SQLITE_PATH": str(data / "tally.sqlite"),
        "TALLY_LOG_LEVEL": "warning",
    }
    windows: dict[str, tuple[float, float]] = {}
    t0 = [0.0]
    try:
        gw._wait_ready(port, server)
        timer = threading.Timer(config.quiet_s, _backups, args=(directory, env, windows, t0))
        t0[0] = time.perf_counter()
        timer.start()
        latencies = uvloop.run(drive(port, requests, config.rate, config.connections))
        timer.join()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
    verified = {}
    for method in windows:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tally.entrypoints.cli",
                "backup",
                "verify",
                str(directory / f"backup-{method}"),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        verified[method] = done.returncode == 0
    out: dict[str, Any] = {"file_mb": file_mb, "rows": config.backup_rows, "rate": config.rate}

    def window(lo: float, hi: float) -> dict[str, Any]:
        """The callbacks scheduled in [lo, hi); None for percentiles when there were none
        (a backup that outlasted the load is not measured, not passed)."""
        ms = sorted(latencies[i] for i in range(len(latencies)) if lo <= i / config.rate < hi)
        return {
            "callbacks": len(ms),
            "covered_s": max(0.0, min(hi, config.seconds) - lo),
            "p50": percentile(ms, 0.5) if ms else None,
            "p99": percentile(ms, 0.99) if ms else None,
            "max": ms[-1] if ms else None,
        }

    out["quiet"] = window(config.warmup_s, config.quiet_s)
    last = max((hi for _, hi in windows.values()), default=config.seconds)
    out["after"] = window(last, config.seconds)
    for method, (lo, hi) in windows.items():
        out[method] = {"seconds": hi - lo, **window(lo, hi), "verified": verified[method]}
    out["all"] = window(0.0, config.seconds)
    return out


def run(config: Config) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tally-bench-lifecycle-") as tmp:
        directory = Path(tmp)
        archive = archive_and_verify(config, directory)
        shutil.rmtree(directory / "archive")
        (directory / "archive-source.sqlite").unlink()
        backup = backup_under_load(config, directory)
    return {"archive": archive, "backup": backup, "config": asdict(config), "pid": os.getpid()}
