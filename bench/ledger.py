"""The ledger benchmark: transfers/s through the real ledger, against two references.

For each store (SQLite WAL synchronous=FULL; PostgreSQL with its default fsync) it runs,
each in a fresh child process and a fresh database:
- ledger: N transfers among M accounts through ``LedgerService`` (group commit) from
  several submitter threads, with submission latency and commit latency;
- naive: the same ledger logic, one database transaction per transfer (on a sample);
- raw: batched inserts of the same rows and balance updates with no ledger logic.
Figures and ratios are printed, saved as JSON under bench/results/ and drawn as a PNG.
"""

from __future__ import annotations

import functools
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import common
from bench.common import peak_rss_mb, percentile, rss_mb
from tally.app.runtime import settle_heap
from tally.kernel.clock import SystemClock
from tally.kernel.limits import LedgerLimits
from tally.ledger.model import Account, AccountFlags, OwnerKind, TransferRequest
from tally.ledger.ports import LedgerStore
from tally.ledger.service import LedgerService

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# transfers/s on the 2-core machine; "postgres-partitioned" is the same store after
# `tally maintain --install` (ADR 0023: transfers by region then month), for the figures
# before and after side by side.
TARGETS = {"sqlite": 50_000, "postgres": 30_000, "postgres-partitioned": 30_000}
MIN_RATIO_TO_NAIVE = 10
MAX_PEAK_MB = 300
WALLET_SHARE = 10  # one account in this many is a wallet with overdraft protection
FUNDING = 10**12  # what each wallet is funded with before the run
# Callers submitting at once: enough for the writer's group commits to fill (ADR 0002)
# with two batches in flight, one deciding while the other commits (ADR 0015).
DEFAULT_SUBMITTERS = 32


@dataclass(frozen=True, slots=True)
class Config:
    store: str
    transfers: int = 1_000_000
    accounts: int = 100_000
    submitters: int = DEFAULT_SUBMITTERS
    chunk: int = 1_000
    naive_sample: int = 20_000
    pg_dsn: str = DEFAULT_PG_DSN
    seed: int = 1


# -- stores and workload ---------------------------------------------------------------------
@contextmanager
def fresh_store(config: Config) -> Iterator[LedgerStore]:
    if config.store == "sqlite":
        from tally.adapters.sqlite.ledger import SqliteLedgerStore

        with tempfile.TemporaryDirectory(prefix="tally-bench-") as tmp:
            store = SqliteLedgerStore(Path(tmp) / "bench.sqlite")
            try:
                yield store
            finally:
                store.close()
        return
    import psycopg

    from tally.adapters.postgres.ledger import PostgresLedgerStore

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(config.pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        if config.store == "postgres-partitioned":
            from tally.adapters.postgres.lifecycle import PARTITIONED, PostgresPartitions
            from tally.lifecycle.seal import Period

            parts = PostgresPartitions(config.pg_dsn, schema=schema)
            parts.install()
            this = Period.containing(datetime.now(UTC), "month")
            for table in PARTITIONED:
                parts.ensure(table, ["global"], [this, this.next()])
        pg = PostgresLedgerStore(config.pg_dsn, schema=schema)
        try:
            yield pg
        finally:
            pg.close()
    finally:
        with psycopg.connect(config.pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def account_id(i: int) -> str:
    return f"acc:{i:07d}"


def setup_accounts(store: LedgerStore, config: Config) -> None:
    """Accounts, and funding for the wallets (not counted in the figures)."""
    now = datetime.now(UTC)
    accounts = [
        Account(
            account_id(i),
            OwnerKind.PLAYER if i % WALLET_SHARE == 0 else OwnerKind.OPERATOR,
            f"o{i}",
            "EUR",
            "bench",
            AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
            if i % WALLET_SHARE == 0
            else AccountFlags.NONE,
        )
        for i in range(config.accounts)
    ]
    accounts.append(Account("bank", OwnerKind.PLATFORM, "bank", "EUR", "funding"))
    for start in range(0, len(accounts), 10_000):
        store.create_accounts(accounts[start : start + 10_000], now)
    wallets = [account_id(i) for i in range(0, config.accounts, WALLET_SHARE)]
    for start in range(0, len(wallets), 5_000):
        store.apply(
            [
                [
                    TransferRequest(f"fund:{w}", "bank", w, FUNDING, "EUR", "funding")
                    for w in wallets[start : start + 5_000]
                ]
            ],
            now,
        )


@functools.cache
def _account_ids(count: int) -> tuple[str, ...]:
    return tuple(account_id(i) for i in range(count))


def transfers(config: Config, start: int, count: int) -> list[TransferRequest]:
    """A deterministic slice of the workload: random pairs, amounts 1..10,000 cents.

    The callers build these in the measured process, beside the writer, so the
    generator is kept cheap: ids made once, and floats rather than ``randrange``.
    """
    rand = random.Random(config.seed * 1_000_003 + start).random
    n = config.accounts
    ids = _account_ids(n)
    out: list[TransferRequest] = []
    for i in range(start, start + count):
        debit = int(rand() * n)
        credit = int(rand() * (n - 1))
        if credit >= debit:
            credit += 1
        amount = int(rand() * 10_000) + 1
        out.append(TransferRequest(f"t{i:09d}", ids[debit], ids[credit], amount, "EUR", "bench"))
    return out


# -- the three runs (in a child process each) ----------------------------------------------------
def run_ledger(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    with fresh_store(config) as store:
        setup_accounts(store, config)
        commits: list[float] = []
        latencies: list[float] = []
        lock = threading.Lock()
        next_start = [0]
        rss: list[tuple[int, float]] = [(0, rss_mb())]
        refused = [0]

        def on_commit(count: int, seconds: float) -> None:
            commits.append(seconds)

        service = LedgerService(store, SystemClock(), LedgerLimits(), on_commit=on_commit)
        # The workload's account ids, made once before the clock starts: left to the
        # submitters, all of them would make the same 100,000 strings at once.
        _account_ids(config.accounts)
        settle_heap()  # as the servers do once wired

        def submitter() -> None:
            while True:
                with lock:
                    start = next_start[0]
                    if start >= config.transfers:
                        return
                    next_start[0] = start + config.chunk
                batch = transfers(config, start, min(config.chunk, config.transfers - start))
                began = time.perf_counter()
                results = service.transfer(batch)
                elapsed = time.perf_counter() - began
                bad = sum(1 for r in results if not r.code.ok)
                with lock:
                    latencies.append(elapsed)
                    refused[0] += bad
                    done = len(latencies) * config.chunk
                    if done % max(config.transfers // 20, config.chunk) < config.chunk:
                        rss.append((min(done, config.transfers), rss_mb()))
                report(len(batch))

        threads = [threading.Thread(target=submitter) for _ in range(config.submitters)]
        began = time.perf_counter()
        with service:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        elapsed = time.perf_counter() - began
        totals = store.totals_by_currency()["EUR"]
        return {
            "transfers": config.transfers,
            "seconds": elapsed,
            "transfers_per_s": config.transfers / elapsed,
            "refused": refused[0],
            "submission_p50_ms": percentile(latencies, 0.50) * 1000,
            "submission_p99_ms": percentile(latencies, 0.99) * 1000,
            "commit_p50_ms": percentile(commits, 0.50) * 1000,
            "commit_p99_ms": percentile(commits, 0.99) * 1000,
            "batches": len(commits),
            "mean_batch": config.transfers / max(1, len(commits)),
            "rss_mb_by_progress": rss,
            "peak_rss_mb": peak_rss_mb(),
            "nets_to_zero": totals.debits_posted == totals.credits_posted,
        }


def run_naive(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    """One database transaction per transfer, through the same store and rules."""
    with fresh_store(config) as store:
        setup_accounts(store, config)
        sample = transfers(config, 0, config.naive_sample)
        settle_heap()  # the references run under the ledger run's collector settings
        commits: list[float] = []
        began = time.perf_counter()
        for request in sample:
            t0 = time.perf_counter()
            store.apply([[request]], datetime.now(UTC))
            commits.append(time.perf_counter() - t0)
            if len(commits) % 500 == 0:
                report(500)
        elapsed = time.perf_counter() - began
        return {
            "transfers": len(sample),
            "seconds": elapsed,
            "transfers_per_s": len(sample) / elapsed,
            "commit_p50_ms": percentile(commits, 0.50) * 1000,
            "commit_p99_ms": percentile(commits, 0.99) * 1000,
            "note": "measured on a sample; the rate holds per transfer",
        }


def run_raw(config: Config, report: Callable[[int], None]) -> dict[str, Any]:
    """The store's own limit: batched inserts and balance updates, no ledger logic."""
    batch = LedgerLimits().batch_max_transfers
    with fresh_store(config) as store:
        setup_accounts(store, config)
        nums = _account_numbers(store)
        now = datetime.now(UTC)
        _account_ids(config.accounts)
        settle_heap()
        began = time.perf_counter()
        done = 0
        while done < config.transfers:
            count = min(batch, config.transfers - done)
            chunk = transfers(config, done, count)
            _raw_write(store, chunk, now, nums)
            done += count
            report(count)
        elapsed = time.perf_counter() - began
        return {
            "transfers": config.transfers,
            "seconds": elapsed,
            "transfers_per_s": config.transfers / elapsed,
        }


def _account_numbers(store: LedgerStore) -> dict[str, int]:
    """The embedded store's account numbers (its writer keeps them as it meets accounts)."""
    from tally.adapters.sqlite.ledger import SqliteLedgerStore

    if not isinstance(store, SqliteLedgerStore):
        return {}
    with store.unit_of_work() as conn:
        return dict(conn.execute("SELECT id, num FROM account_definitions"))


def _raw_write(
    store: LedgerStore, chunk: list[TransferRequest], now: datetime, nums: dict[str, int]
) -> None:
    from tally.adapters.postgres.ledger import copy_transfers
    from tally.adapters.postgres.params import ROWS_OF, rows_of
    from tally.adapters.sql import rows
    from tally.ledger.model import Transfer, TransferKind

    created = [
        Transfer(
            t.id,
            TransferKind.SINGLE,
            t.debit_account_id,
            t.credit_account_id,
            t.amount or 0,
            "EUR",
            "bench",
            now,
            now,
        )
        for t in chunk
    ]
    debits = [(t.amount, t.debit_account_id) for t in chunk]
    credits = [(t.amount, t.credit_account_id) for t in chunk]
    from tally.adapters.sqlite.ledger import SqliteLedgerStore, transfer_writes, write

    if isinstance(store, SqliteLedgerStore):
        from tally.kernel.clock import to_micros

        with store.unit_of_work() as conn:
            write(conn, transfer_writes(created, to_micros))
            for column, pairs in (("debits_posted", debits), ("credits_posted", credits)):
                conn.executemany(
                    f"UPDATE account_balances SET {column} = {column} + ? WHERE num = ?",
                    [(amount, nums[a]) for amount, a in pairs],
                )
        store.index_history_behind()  # the schema's own cost, as the ledger pays it
        return
    with store.unit_of_work() as conn, conn.cursor() as cur:  # type: ignore[attr-defined]
        copy_transfers(cur, (rows.transfer_row(t, lambda d: d) for t in created))
        for column, pairs in (("debits_posted", debits), ("credits_posted", credits)):
            # Sent as the ledger sends its balance rows (one JSON parameter), so the
            # reference pays no cost the ledger does not.
            cur.execute(
                f"UPDATE account_balances AS a SET {column} = a.{column} + v.amount "
                "FROM (SELECT x.e->>1 AS id, SUM((x.e->>0)::bigint) AS amount "
                f"FROM {ROWS_OF} AS x(e) GROUP BY 1) AS v WHERE a.id = v.id",
                (rows_of(pairs),),
            )


RUNS: dict[str, Callable[[Config, Callable[[int], None]], dict[str, Any]]] = {
    "ledger": run_ledger,
    "naive": run_naive,
    "raw": run_raw,
}


def run_child(run: str, config: Config, on_progress: Callable[[int], None]) -> dict[str, Any]:
    return common.run_child("bench.ledger", run, config, on_progress)


def summarize(store: str, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ledger, naive, raw = runs["ledger"], runs["naive"], runs["raw"]
    rss = [mb for _, mb in ledger["rss_mb_by_progress"]]
    half = len(rss) // 2
    growth = (max(rss[half:]) - max(rss[:half] or rss)) if len(rss) > 2 else 0.0
    return {
        "store": store,
        **runs,
        "ratio_to_naive": ledger["transfers_per_s"] / naive["transfers_per_s"],
        "ratio_to_raw": ledger["transfers_per_s"] / raw["transfers_per_s"],
        "rss_growth_second_half_mb": growth,
        "targets": {
            "transfers_per_s": TARGETS[store],
            "met_transfers_per_s": ledger["transfers_per_s"] >= TARGETS[store],
            "met_ratio_to_naive": ledger["transfers_per_s"]
            >= MIN_RATIO_TO_NAIVE * naive["transfers_per_s"],
            "met_peak_memory": ledger["peak_rss_mb"] < MAX_PEAK_MB,
        },
    }


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stores = [r for r in results["stores"]]
    fig, (bars, memory) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.25
    for offset, run in enumerate(("naive", "ledger", "raw")):
        xs = [i + (offset - 1) * width for i in range(len(stores))]
        values = [s[run]["transfers_per_s"] for s in stores]
        bars.bar(xs, values, width, label=run)
        for x, v in zip(xs, values, strict=True):
            bars.text(x, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    for i, s in enumerate(stores):
        bars.hlines(TARGETS[s["store"]], i - 0.4, i + 0.4, colors="red", linestyles="dashed")
    bars.set_xticks(range(len(stores)), [s["store"] for s in stores])
    bars.set_ylabel("transfers per second")
    bars.set_title("Ledger vs naive (1 txn/transfer) vs raw inserts; red: target")
    bars.legend()
    for s in stores:
        points = s["ledger"]["rss_mb_by_progress"]
        memory.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=s["store"])
    memory.axhline(MAX_PEAK_MB, color="red", linestyle="dashed", label="limit")
    memory.set_xlabel("transfers committed")
    memory.set_ylabel("resident memory (MB)")
    memory.set_title("Memory while posting")
    memory.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    common.child_main(sys.argv[1:], RUNS, Config)
