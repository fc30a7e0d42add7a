"""``tally bench ...``: benchmark scripts (figures, never timed tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn
from rich.table import Table

from tally.benchmarks import gateway as gateway_bench
from tally.benchmarks import ledger as ledger_bench
from tally.benchmarks.common import machine, save
from tally.entrypoints.cli.common import console

app = typer.Typer(
    help="Benchmarks: print figures, save JSON and a PNG chart under bench/results/.",
    no_args_is_help=True,
)


@app.command("ledger")
def ledger(
    transfers: Annotated[int, typer.Option(help="transfers per ledger run")] = 1_000_000,
    accounts: Annotated[int, typer.Option(help="accounts they move between")] = 100_000,
    stores: Annotated[str, typer.Option(help="comma-separated: sqlite,postgres")] = (
        "sqlite,postgres"
    ),
    submitters: Annotated[int, typer.Option(help="concurrent submitter threads")] = 4,
    naive_sample: Annotated[int, typer.Option(help="transfers in the naive run")] = 20_000,
    pg_dsn: Annotated[str, typer.Option(help="PostgreSQL for the postgres runs")] = (
        ledger_bench.DEFAULT_PG_DSN
    ),
    out: Annotated[Path, typer.Option(help="where JSON and PNG go")] = Path("bench/results"),
) -> None:
    """Post transfers through the ledger on each store, beside a naive and a raw reference."""
    summaries: list[dict[str, Any]] = []
    for store in [s.strip() for s in stores.split(",") if s.strip()]:
        if store not in ledger_bench.TARGETS:
            raise typer.BadParameter(f"unknown store {store!r}")
        sample = naive_sample if store == "sqlite" else max(1_000, naive_sample // 4)
        config = ledger_bench.Config(
            store=store,
            transfers=transfers,
            accounts=accounts,
            submitters=submitters,
            naive_sample=min(sample, transfers),
            pg_dsn=pg_dsn,
        )
        runs: dict[str, dict[str, Any]] = {}
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            for run, total in (
                ("ledger", transfers),
                ("naive", config.naive_sample),
                ("raw", transfers),
            ):
                task = progress.add_task(f"{store}: {run}", total=total)

                def advance(count: int, task: TaskID = task) -> None:
                    progress.advance(task, count)

                runs[run] = ledger_bench.run_child(run, config, advance)
        summaries.append(ledger_bench.summarize(store, runs))
    results = {
        "benchmark": "ledger",
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "transfers": transfers,
        "accounts": accounts,
        "submitters": submitters,
        "stores": summaries,
    }
    path = save(results, out, "ledger")
    png = path.with_suffix(".png")
    ledger_bench.chart(results, png)
    (out / "ledger-latest.png").write_bytes(png.read_bytes())
    table = Table(
        "store",
        "ledger /s",
        "naive /s",
        "raw /s",
        "x naive",
        "of raw",
        "submit p50/p99 ms",
        "commit p50/p99 ms",
        "peak MB",
        "targets",
    )
    for s in summaries:
        led, targets = s["ledger"], s["targets"]
        met = all(v for k, v in targets.items() if k.startswith("met_"))
        table.add_row(
            s["store"],
            f"{led['transfers_per_s']:,.0f}",
            f"{s['naive']['transfers_per_s']:,.0f}",
            f"{s['raw']['transfers_per_s']:,.0f}",
            f"{s['ratio_to_naive']:.1f}",
            f"{s['ratio_to_raw']:.0%}",
            f"{led['submission_p50_ms']:.1f} / {led['submission_p99_ms']:.1f}",
            f"{led['commit_p50_ms']:.1f} / {led['commit_p99_ms']:.1f}",
            f"{led['peak_rss_mb']:.0f}",
            "[green]met[/green]" if met else "[red]missed[/red]",
        )
    console.print(table)
    console.print(f"load average at the end: {machine()['load_average']}")
    console.print(f"saved {path} and {png}")


@app.command("gateway")
def gateway(
    rate: Annotated[float, typer.Option(help="callbacks per second, scheduled")] = (
        gateway_bench.TARGET_REQUESTS_PER_S
    ),
    seconds: Annotated[float, typer.Option(help="how long the load lasts")] = 20.0,
    connections: Annotated[int, typer.Option(help="keep-alive connections")] = 64,
    players: Annotated[int, typer.Option(help="funded wallets")] = 5_000,
    naive: Annotated[bool, typer.Option(help="also run the naive baseline")] = True,
    out: Annotated[Path, typer.Option(help="where JSON and PNG go")] = Path("bench/results"),
) -> None:
    """Signed SoftSwiss callbacks over HTTP into the wallet gateway: rate and latency."""
    results: dict[str, Any] = {
        "benchmark": "gateway",
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "targets": {
            "requests_per_s": gateway_bench.TARGET_REQUESTS_PER_S,
            "p99_ms": gateway_bench.TARGET_P99_MS,
        },
    }
    runs = [("gateway", False)] + ([("naive", True)] if naive else [])
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        for name, is_naive in runs:
            config = gateway_bench.Config(
                rate=rate, seconds=seconds, connections=connections, players=players, naive=is_naive
            )
            task = progress.add_task(name, total=int(rate * seconds))

            def update(done: int, task: TaskID = task) -> None:
                progress.update(task, completed=done)

            results[name] = gateway_bench.run(config, update)
    main = results["gateway"]
    results["targets"]["met_requests_per_s"] = (
        main["requests_per_s"] >= 0.98 * gateway_bench.TARGET_REQUESTS_PER_S
        and main["statuses"].get("200", 0) == main["requests"]
    )
    results["targets"]["met_p99_ms"] = main["latency_ms"]["p99"] < gateway_bench.TARGET_P99_MS
    path = save(results, out, "gateway")
    png = path.with_suffix(".png")
    gateway_bench.chart(results, png)
    (out / "gateway-latest.png").write_bytes(png.read_bytes())
    table = Table(
        "run", "req/s", "events/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "answers", "logged"
    )
    for name, _ in runs:
        r = results[name]
        lat = r["latency_ms"]
        table.add_row(
            name,
            f"{r['requests_per_s']:,.0f}",
            f"{r['events_per_s']:,.0f}",
            f"{lat['p50']:.1f}",
            f"{lat['p95']:.1f}",
            f"{lat['p99']:.1f}",
            f"{lat['max']:.1f}",
            ", ".join(f"{k}: {v}" for k, v in r["statuses"].items()),
            f"{r['events_logged']:,} of {r['events_expected']:,}",
        )
    console.print(table)
    met = results["targets"]
    console.print(
        f"targets: {gateway_bench.TARGET_REQUESTS_PER_S:,} req/s "
        f"{'[green]met[/green]' if met['met_requests_per_s'] else '[red]missed[/red]'}, "
        f"p99 < {gateway_bench.TARGET_P99_MS:.0f} ms "
        f"{'[green]met[/green]' if met['met_p99_ms'] else '[red]missed[/red]'}"
    )
    console.print(f"load average at the end: {machine()['load_average']}")
    console.print(f"saved {path} and {png}")
