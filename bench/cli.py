"""``python -m bench ...`` (``make bench``): the benchmarks' command line (figures, never
timed tests). It lives beside the package, not in it: ``tally`` installs no benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn

from bench import alerts as alerts_bench
from bench import console as console_bench
from bench import gateway as gateway_bench
from bench import ingest as ingest_bench
from bench import ledger as ledger_bench
from bench import lifecycle as lifecycle_bench
from bench import payouts as payouts_bench
from bench import rails as rails_bench
from bench import reconcile as reconcile_bench
from bench import risk as risk_bench
from bench import settlement as settlement_bench
from bench.common import machine, save
from tally.entrypoints.cli.common import console
from tally.entrypoints.cli.tables import Table

app = typer.Typer(
    name="bench",
    help="Benchmarks: print figures, save JSON and a PNG chart under bench/results/.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _met(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]missed[/red]"


@app.command("ledger")
def ledger(
    transfers: Annotated[int, typer.Option(help="transfers per ledger run")] = 1_000_000,
    accounts: Annotated[int, typer.Option(help="accounts they move between")] = 100_000,
    stores: Annotated[
        str, typer.Option(help="comma-separated: sqlite,postgres,postgres-partitioned")
    ] = ("sqlite,postgres"),
    submitters: Annotated[
        int, typer.Option(help="concurrent submitter threads")
    ] = ledger_bench.DEFAULT_SUBMITTERS,
    naive_sample: Annotated[int, typer.Option(help="transfers in the naive run")] = 20_000,
    pg_dsn: Annotated[str, typer.Option(help="PostgreSQL for the postgres runs")] = (
        ledger_bench.DEFAULT_PG_DSN
    ),
    out: Annotated[Path, typer.Option(help="where JSON and PNG go")] = Path("bench/results"),
) -> dict[str, Any]:
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
        with _progress() as progress:
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
    return results


@app.command("gateway")
def gateway(
    rate: Annotated[float, typer.Option(help="callbacks per second, scheduled")] = (
        gateway_bench.TARGET_REQUESTS_PER_S
    ),
    seconds: Annotated[float, typer.Option(help="how long the load lasts")] = 20.0,
    connections: Annotated[int, typer.Option(help="keep-alive connections")] = 64,
    players: Annotated[int, typer.Option(help="funded wallets")] = 5_000,
    fronts: Annotated[
        int, typer.Option(min=0, help="HTTP front processes (ADR 0017); 0: HTTP in the core")
    ] = gateway_bench.FRONTS,
    naive: Annotated[bool, typer.Option(help="also run the naive baseline")] = True,
    out: Annotated[Path, typer.Option(help="where JSON and PNG go")] = Path("bench/results"),
) -> dict[str, Any]:
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
    with _progress() as progress:
        for name, is_naive in runs:
            config = gateway_bench.Config(
                rate=rate,
                seconds=seconds,
                connections=connections,
                players=players,
                naive=is_naive,
                fronts=fronts,
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
    results["targets"]["met_half_of_noop"] = main["ratio_to_noop"] >= 0.5
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
        f"no-op route on the same server: {main['noop']['requests_per_s']:,.0f} req/s "
        f"(p99 {main['noop']['latency_ms']['p99']:.1f} ms); the gateway does "
        f"{main['ratio_to_noop']:.0%} of it "
        f"{_met(results['targets']['met_half_of_noop'])} (target: half)"
    )
    console.print(
        f"targets: {gateway_bench.TARGET_REQUESTS_PER_S:,} req/s "
        f"{'[green]met[/green]' if met['met_requests_per_s'] else '[red]missed[/red]'}, "
        f"p99 < {gateway_bench.TARGET_P99_MS:.0f} ms "
        f"{'[green]met[/green]' if met['met_p99_ms'] else '[red]missed[/red]'}"
    )
    console.print(f"load average at the end: {machine()['load_average']}")
    console.print(f"saved {path} and {png}")
    return results


@app.command("import")
def import_(
    lines: Annotated[int, typer.Option(help="lines in the report")] = 300_000,
    naive_sample: Annotated[int, typer.Option(help="lines in the naive run")] = 10_000,
    out: Annotated[Path, typer.Option(help="where JSON goes")] = Path("bench/results"),
) -> dict[str, Any]:
    """Import a generated provider report (CSV) into the event log, against one line per
    transaction."""
    with _progress() as progress:
        fast_task = progress.add_task("import (batched)", total=lines)
        fast = ingest_bench.run(lines, 5_000, lambda n: progress.update(fast_task, completed=n))
        naive_task = progress.add_task("import (one line per transaction)", total=naive_sample)
        naive = ingest_bench.run(
            naive_sample, 1, lambda n: progress.update(naive_task, completed=n)
        )
    results = {
        "benchmark": "import",
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "batched": fast,
        "naive": naive,
        "ratio_to_naive": fast["events_per_s"] / naive["events_per_s"],
        "targets": {
            "events_per_s": ingest_bench.TARGET_EVENTS_PER_S,
            "met_events_per_s": fast["events_per_s"] >= ingest_bench.TARGET_EVENTS_PER_S,
        },
    }
    path = save(results, out, "import")
    table = Table("run", "lines", "events/s", "accepted", "rejected", "logged")
    for name in ("batched", "naive"):
        r = results[name]
        table.add_row(
            name,
            f"{r['lines']:,}",
            f"{r['events_per_s']:,.0f}",
            f"{r['counts']['accepted']:,}",
            f"{r['counts']['rejected']:,}",
            f"{r['events_logged']:,}",
        )
    console.print(table)
    console.print(
        f"x naive {results['ratio_to_naive']:.1f}; target "
        f"{ingest_bench.TARGET_EVENTS_PER_S:,}/s {_met(results['targets']['met_events_per_s'])}"
    )
    console.print(f"saved {path}")
    return results


@app.command("settlement")
def settlement(
    events: Annotated[int, typer.Option(help="events replayed")] = 1_000_000,
    stores: Annotated[str, typer.Option(help="comma-separated: sqlite,postgres")] = (
        "sqlite,postgres"
    ),
    naive_sample: Annotated[int, typer.Option(help="events in the naive run")] = 20_000,
    rate: Annotated[float, typer.Option(help="the latency run's events/s")] = 2_000.0,
    seconds: Annotated[float, typer.Option(help="the latency run's length")] = 30.0,
    out: Annotated[Path, typer.Option(help="where JSON and PNG go")] = Path("bench/results"),
) -> dict[str, Any]:
    """Replay the event log to statements on each store, beside a naive replay; then the
    latency from append to accruals at a steady rate."""
    summaries: list[dict[str, Any]] = []
    for store in [s.strip() for s in stores.split(",") if s.strip()]:
        if store not in settlement_bench.TARGETS:
            raise typer.BadParameter(f"unknown store {store!r}")
        config = settlement_bench.Config(
            store=store, events=events, naive_sample=naive_sample, rate=rate, seconds=seconds
        )
        runs: dict[str, Any] = {}
        with _progress() as progress:
            for run, total in (
                ("replay", events),
                ("naive", naive_sample),
                ("latency", int(rate * seconds)),
            ):
                task = progress.add_task(f"{store}: {run}", total=total)

                def update(count: int, task: TaskID = task) -> None:
                    progress.update(task, completed=count)

                runs[run] = settlement_bench.run_child(run, config, update)
        replay = runs["replay"]
        summaries.append(
            {
                "store": store,
                **runs,
                "ratio_to_naive": replay["events_per_s"] / runs["naive"]["events_per_s"],
                "targets": {
                    "events_per_s": settlement_bench.TARGETS[store],
                    "met_events_per_s": replay["events_per_s"] >= settlement_bench.TARGETS[store],
                    "met_p99_ms": runs["latency"]["latency_ms"]["p99"]
                    < settlement_bench.TARGET_P99_MS,
                },
            }
        )
    results = {
        "benchmark": "settlement",
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "events": events,
        "stores": summaries,
    }
    path = save(results, out, "settlement")
    png = path.with_suffix(".png")
    settlement_bench.chart(results, png)
    (out / "settlement-latest.png").write_bytes(png.read_bytes())
    table = Table(
        "store", "replay /s", "naive /s", "x naive", "append /s", "p50/p99 ms", "RSS MB", "targets"
    )
    for s in summaries:
        r, lat = s["replay"], s["latency"]["latency_ms"]
        met = s["targets"]["met_events_per_s"] and s["targets"]["met_p99_ms"]
        table.add_row(
            s["store"],
            f"{r['events_per_s']:,.0f}",
            f"{s['naive']['events_per_s']:,.0f}",
            f"{s['ratio_to_naive']:.1f}",
            f"{r['append_events_per_s']:,.0f}",
            f"{lat['p50']:.1f} / {lat['p99']:.1f}",
            f"{r['rss_start_mb']:.0f}/{r['rss_peak_mb']:.0f}/{r['rss_end_mb']:.0f}",
            _met(met),
        )
    console.print(table)
    console.print(f"load average at the end: {machine()['load_average']}")
    console.print(f"saved {path} and {png}")
    return results


def _sizes(lines: int) -> list[int]:
    """The sizes memory is read at: a tenth, about a third and the whole report."""
    return sorted({max(1_000, lines // 10), max(1_000, lines * 3 // 10), lines})


@app.command("reconcile")
def reconcile(
    lines: Annotated[int, typer.Option(help="report lines of the largest run")] = 1_000_000,
    stores: Annotated[str, typer.Option(help="comma-separated: sqlite,postgres")] = (
        "sqlite,postgres"
    ),
    naive_sample: Annotated[int, typer.Option(help="lines in the naive run")] = 5_000,
    postgres_lines: Annotated[
        int, typer.Option(help="report lines of the largest scaled run (0: --lines)")
    ] = 0,
    out: Annotated[Path, typer.Option(help="where JSON and PNG go")] = Path("bench/results"),
) -> dict[str, Any]:
    """Reconcile a provider's report against the event log on each store, at three sizes
    (memory), beside a naive line-by-line query of Tally's side."""
    summaries: list[dict[str, Any]] = []
    for store in [s.strip() for s in stores.split(",") if s.strip()]:
        if store not in reconcile_bench.TARGETS:
            raise typer.BadParameter(f"unknown store {store!r}")
        sizes: list[dict[str, Any]] = []
        naive: dict[str, Any] = {}
        largest_size = postgres_lines if store == "postgres" and postgres_lines else lines
        with _progress() as progress:
            for size in _sizes(largest_size):
                config = reconcile_bench.Config(
                    store=store, lines=size, naive_sample=min(naive_sample, size)
                )
                with reconcile_bench.world(config) as placed:
                    runs: dict[str, Any] = {"lines": size}
                    steps = [("build", size), ("run", size)]
                    steps += [("naive", placed.naive_sample)] if size == largest_size else []
                    for run, total in steps:
                        task = progress.add_task(f"{store} {size:,}: {run}", total=total)

                        def update(count: int, task: TaskID = task) -> None:
                            progress.update(task, completed=count)

                        runs[run] = reconcile_bench.run_child(run, placed, update)
                naive = runs.pop("naive", naive)
                sizes.append(runs)
        largest = sizes[-1]["run"]
        summaries.append(
            {
                "store": store,
                "sizes": sizes,
                "naive": naive,
                "ratio_to_naive": largest["lines_per_s"] / naive["lines_per_s"],
                "targets": {
                    "lines_per_s": reconcile_bench.TARGETS[store],
                    "met_lines_per_s": largest["lines_per_s"] >= reconcile_bench.TARGETS[store],
                    "precision_recall": reconcile_bench.SCORE_TARGET,
                    "met_precision_recall": all(
                        size["run"][score] >= reconcile_bench.SCORE_TARGET
                        for size in sizes
                        for score in ("precision", "recall")
                    ),
                },
            }
        )
    results = {
        "benchmark": "reconcile",
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "lines": lines,
        "stores": summaries,
    }
    path = save(results, out, "reconcile")
    png = path.with_suffix(".png")
    reconcile_bench.chart(results, png)
    (out / "reconcile-latest.png").write_bytes(png.read_bytes())
    table = Table(
        "store", "lines", "lines/s", "breaks", "precision / recall", "RSS before/peak MB",
        "report MB", "x naive",
    )  # fmt: skip
    for s in summaries:
        for size in s["sizes"]:
            r = size["run"]
            largest_run = size is s["sizes"][-1]
            table.add_row(
                s["store"],
                f"{r['lines']:,}",
                f"{r['lines_per_s']:,.0f}",
                f"{r['breaks']:,}",
                f"{r['precision']:.4f} / {r['recall']:.4f}",
                f"{r['rss_before_mb']:.0f} / {r['rss_peak_mb']:.0f}",
                f"{r['report_mb']:.0f}",
                f"{s['ratio_to_naive']:.1f}" if largest_run else "",
            )
        table.add_row(
            f"{s['store']} naive", f"{s['naive']['lines']:,}",
            f"{s['naive']['lines_per_s']:,.0f}", "", "", "", "", "1.0",
        )  # fmt: skip
    console.print(table)
    for s in summaries:
        console.print(
            f"{s['store']}: target {s['targets']['lines_per_s']:,} lines/s "
            f"{_met(s['targets']['met_lines_per_s'])}; precision and recall "
            f"{reconcile_bench.SCORE_TARGET} {_met(s['targets']['met_precision_recall'])}"
        )
    console.print(f"load average at the end: {machine()['load_average']}")
    console.print(f"saved {path} and {png}")
    return results


@app.command("rails")
def rails(
    payouts: Annotated[int, typer.Option(help="payouts the PSP rail submits")] = 100_000,
    naive_sample: Annotated[int, typer.Option(help="payouts sent one request each")] = 2_000,
    webhooks: Annotated[int, typer.Option(help="signed webhooks verified")] = 100_000,
    payments: Annotated[int, typer.Option(help="payments in one pain.001 file")] = 10_000,
    out: Annotated[Path, typer.Option(help="where JSON goes")] = Path("bench/results"),
) -> dict[str, Any]:
    """The payout rails: PSP submits against the fake PSP (beside one request per payout),
    webhook verification, and a pain.001 file (beside sepaxml alone)."""
    psp = rails_bench.psp(payouts, naive_sample)
    hooks = rails_bench.webhooks(webhooks)
    bank = rails_bench.bank_file(payments)
    target = rails_bench.TARGET_PAYOUTS_PER_S
    results: dict[str, Any] = {
        "benchmark": "rails",
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "psp": psp,
        "webhooks": hooks,
        "bank_file": bank,
        "targets": {
            "payouts_per_s": target,
            "met_payouts_per_s": psp["payouts_per_s"] >= target,
        },
    }
    path = save(results, out, "rails")
    table = Table("what", "count", "per second", "x naive")
    table.add_row(
        "PSP submits (batches)", f"{psp['payouts']:,}", f"{psp['payouts_per_s']:,.0f}",
        f"{psp['payouts_per_s'] / psp['naive']['payouts_per_s']:.1f}",
    )  # fmt: skip
    table.add_row("PSP paid (its ledger)", f"{psp['payouts']:,}", f"{psp['paid_per_s']:,.0f}", "")
    table.add_row(
        "naive: one request each", f"{psp['naive']['payouts']:,}",
        f"{psp['naive']['payouts_per_s']:,.0f}", "1.0",
    )  # fmt: skip
    table.add_row(
        "webhooks verified", f"{hooks['webhooks']:,}", f"{hooks['webhooks_per_s']:,.0f}", ""
    )
    table.add_row(
        "pain.001 payments (XSD-checked)", f"{bank['payments']:,}",
        f"{bank['payments_per_s']:,.0f}",
        f"{bank['payments_per_s'] / bank['sepaxml_alone']['payments_per_s']:.2f}",
    )  # fmt: skip
    table.add_row(
        "sepaxml alone", f"{bank['payments']:,}",
        f"{bank['sepaxml_alone']['payments_per_s']:,.0f}", "1.0",
    )  # fmt: skip
    console.print(table)
    console.print(
        f"PSP submits: target {target:,} payouts/s {_met(results['targets']['met_payouts_per_s'])}"
    )
    console.print(f"load average at the end: {machine()['load_average']}")
    console.print(f"saved {path}")
    return results


@app.command("console")
def console_pages(
    transfers: Annotated[int, typer.Option(help="transfers in the store")] = 1_000_000,
    requests: Annotated[int, typer.Option(help="timed requests per page")] = 40,
    settlement_events: Annotated[int, typer.Option(help="settled events (figures)")] = 20_000,
    consoles: Annotated[int, typer.Option(help="live feeds open at once")] = 50,
    seconds: Annotated[float, typer.Option(help="how long they stay open")] = 10.0,
    out: Annotated[Path, typer.Option(help="where the JSON goes")] = Path("bench/results"),
) -> dict[str, Any]:
    """The console's pages, server-side, over an embedded store of N transfers: p50/p95;
    then the API's latency with N live consoles open on the same process."""
    with console.status(f"loading {transfers:,} transfers and timing the console's pages"):
        results = console_bench.run(
            console_bench.Config(transfers, requests, settlement_events, consoles, seconds)
        )
    results["measured_at"] = datetime.now(UTC).isoformat()
    results["machine"] = machine()
    path = save(results, out, "console")
    table = Table("page", "p50 ms", "p95 ms", "max ms", title=f"{transfers:,} transfers")
    for name, f in results["pages"].items():
        table.add_row(name, f"{f['p50_ms']:.1f}", f"{f['p95_ms']:.1f}", f"{f['max_ms']:.1f}")
    console.print(table)
    snap = results["live_snapshot_ms"]
    console.print(
        f"live snapshot p50/p95 {snap['p50']:.1f}/{snap['p95']:.1f} ms; worst page p95 "
        f"{results['worst_p95_ms']:.1f} ms (< {console_bench.TARGET_P95_MS:.0f}: "
        f"{_met(results['targets']['met_p95_ms'])}); loaded in {results['load_s']:.0f} s"
    )
    live = results["live_consoles"]
    console.print(
        f"{live['consoles_fed']} of {live['consoles']} live consoles fed for "
        f"{live['seconds']:.0f} s; GET /health p50/p99 alone "
        f"{live['alone_ms']['p50']:.1f}/{live['alone_ms']['p99']:.1f} ms, beside them "
        f"{live['beside_ms']['p50']:.1f}/{live['beside_ms']['p99']:.1f} ms"
    )
    console.print(f"saved {path}")
    return results


@app.command("payouts")
def payouts(
    payouts: Annotated[int, typer.Option(help="payouts in the run")] = 100_000,
    naive_sample: Annotated[int, typer.Option(help="payouts in the naive run")] = 2_000,
    out: Annotated[Path, typer.Option(help="where JSON goes")] = Path("bench/results"),
) -> dict[str, Any]:
    """A run of payouts reserved and submitted on the embedded store (internal and an
    asynchronous in-process rail, whose answers are then absorbed), beside a naive worker
    that moves one payout per transaction."""
    results = payouts_bench.run(payouts, naive_sample)
    results["measured_at"] = datetime.now(UTC).isoformat()
    results["machine"] = machine()
    save(results, out, "payouts")
    table = Table("rail", "payouts", "reserve+submit /s", "absorbed /s", "x naive", "target")
    for r in results["runs"]:
        table.add_row(
            r["rail"],
            f"{r['payouts']:,}",
            f"{r['payouts_per_s']:,.0f}",
            f"{r['absorbed_per_s']:,.0f}" if "absorbed_per_s" in r else "-",
            f"{r['x_naive']:.1f}",
            _met(r["met_target"]),
        )
    naive = results["naive"]
    table.add_row(
        "naive (1/tx)", f"{naive['payouts']:,}", f"{naive['payouts_per_s']:,.0f}", "-", "1.0", ""
    )
    console.print(table)
    return results


@app.command("alerts")
def alerts(
    signals: Annotated[int, typer.Option(help="signals through the sink")] = 20_000,
    keys: Annotated[int, typer.Option(help="distinct conditions (kind, key) they name")] = 1_000,
    stores: Annotated[str, typer.Option(help="comma-separated: sqlite,postgres")] = (
        "sqlite,postgres"
    ),
    naive_sample: Annotated[int, typer.Option(help="signals in the naive run")] = 2_000,
    pg_dsn: Annotated[str, typer.Option(help="PostgreSQL for the postgres run")] = (
        alerts_bench.DEFAULT_PG_DSN
    ),
    out: Annotated[Path, typer.Option(help="where the JSON goes")] = Path("bench/results"),
) -> dict[str, Any]:
    """Signals through the deployment's alert sink on each store (deduplicated, audited on
    change), beside a naive sink that keeps every signal as its own audited alert."""
    summaries = []
    for store in [s.strip() for s in stores.split(",") if s.strip()]:
        with console.status(f"alerts: {store}"):
            summaries.append(
                alerts_bench.run(store, signals, keys, min(naive_sample, signals), pg_dsn)
            )
    results = {
        "benchmark": "alerts",
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "stores": summaries,
    }
    save(results, out, "alerts")
    table = Table(
        "store", "signals/s", "uncoalesced /s", "naive /s", "x naive", "alerts", "audited",
        "switch asks/s",
    )  # fmt: skip
    for s in summaries:
        table.add_row(
            s["store"],
            f"{s['sink']['signals_per_s']:,.0f}",
            f"{s['uncoalesced']['signals_per_s']:,.0f}",
            f"{s['naive']['signals_per_s']:,.0f}",
            f"{s['ratio_to_naive']:.1f}",
            f"{s['sink']['alerts']:,}",
            f"{s['sink']['audited']:,}",
            f"{s['switches']['asks_per_s']:,.0f}",
        )
    console.print(table)
    return results


@app.command("risk")
def risk(
    days: Annotated[float, typer.Option(help="simulated days with incidents")] = 2.0,
    per_kind: Annotated[int, typer.Option(help="incidents of each kind")] = 2,
    rate: Annotated[float, typer.Option(help="rounds per minute (all regions)")] = 200.0,
    clean_days: Annotated[float, typer.Option(help="simulated days without incidents")] = 7.0,
    clean_rate: Annotated[float, typer.Option(help="rounds per minute, clean run")] = 100.0,
    seed: Annotated[int, typer.Option(help="the world's and incidents' seed")] = 1,
    behaviour_days: Annotated[
        float, typer.Option(help="simulated days of the baseline vs learner run")
    ] = 2.0,
    forecast_rate: Annotated[
        float, typer.Option(help="rounds per minute of the four forecast weeks")
    ] = 15.0,
    out: Annotated[Path, typer.Option(help="where JSON goes")] = Path("bench/results"),
) -> dict[str, Any]:
    """Labelled incidents (NAB-style scores), a clean week, detector and worker speed,
    forecast accuracy and refit time."""
    config = risk_bench.Config(
        seed=seed,
        days=days,
        rounds_per_minute=rate,
        per_kind=per_kind,
        clean_days=clean_days,
        clean_rounds_per_minute=clean_rate,
        behaviour_days=behaviour_days,
        forecast_rounds_per_minute=forecast_rate,
    )
    runs: dict[str, Any] = {}
    with _progress() as progress:
        for name, fn in (
            ("incidents", risk_bench.run_incidents),
            ("clean", risk_bench.run_clean),
            ("behaviour", risk_bench.run_behaviour),
            ("worker", risk_bench.run_worker),
            ("forecast", risk_bench.run_forecast),
        ):
            task = progress.add_task(f"risk: {name}", total=None)

            def advance(count: int, task: TaskID = task) -> None:
                progress.advance(task, count)

            runs[name] = fn(config, advance)
    results = {
        "benchmark": "risk",
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "config": {
            "seed": seed,
            "days": days,
            "per_kind": per_kind,
            "rounds_per_minute": rate,
            "clean_days": clean_days,
            "clean_rounds_per_minute": clean_rate,
            "behaviour_days": behaviour_days,
            "forecast_rounds_per_minute": forecast_rate,
        },
        **runs,
    }
    results["targets"] = risk_bench.targets(results)
    save(results, out, "risk")
    s = runs["incidents"]["score"]
    table = Table("incident kind", "incidents", "recall", "median delay s")
    for kind, k in s["kinds"].items():
        table.add_row(kind, str(k["incidents"]), f"{k['recall']:.2f}", str(k["median_delay_s"]))
    console.print(table)
    f = runs["forecast"]
    console.print(
        f"precision {s['precision']:.3f}  recall {s['recall']:.3f}  median delay "
        f"{s['median_delay_s']:.0f} s  clean-week alerts {runs['clean']['alerts']}  "
        f"detectors {runs['incidents']['detector_events_per_s']:,.0f} events/s  "
        f"worker {runs['worker']['events_per_s']:,.0f} events/s "
        f"(x{runs['worker']['ratio_to_settlement'] or 0:.2f} settlement's replay)  "
        f"forecast MASE {f['profile']['mase']:.3f} vs naive "
        f"{f['profile']['mase_seasonal_naive']:.3f} "
        f"({f['profile']['improvement']:.0%} better), 95% cover {f['profile']['coverage_95']:.1%}, "
        f"MSTL {f['mstl']['improvement']:.0%} better, refit 100 series {f['refit_100_s']:.1f} s"
    )
    for name, ok in results["targets"].items():
        console.print(f"{name}: {_met(ok)}")
    return results


@app.command("lifecycle")
def lifecycle(
    rows: Annotated[int, typer.Option(help="transfers in the partition archived")] = 1_000_000,
    naive_sample: Annotated[int, typer.Option(help="rows in the naive run")] = 100_000,
    backup_rows: Annotated[int, typer.Option(help="transfers in the file backed up")] = (1_000_000),
    rate: Annotated[float, typer.Option(help="gateway callbacks/s during the backups")] = 2_000.0,
    seconds: Annotated[float, typer.Option(help="how long the load lasts")] = 60.0,
    out: Annotated[Path, typer.Option(help="where JSON goes")] = Path("bench/results"),
) -> dict[str, Any]:
    """Archive and verify a partition (rows/s); back up a large file under gateway load."""
    config = lifecycle_bench.Config(
        rows=rows,
        naive_sample=naive_sample,
        backup_rows=backup_rows,
        rate=rate,
        seconds=seconds,
    )
    with console.status("lifecycle: archive, verify, then backups under load"):
        measured = lifecycle_bench.run(config)
    a, b = measured["archive"], measured["backup"]
    results = {
        "benchmark": "lifecycle",
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        **measured,
        "targets": {
            "met_archive_rows_per_s": a["archive_rows_per_s"] >= lifecycle_bench.TARGET_ROWS_PER_S,
            "met_verify_rows_per_s": a["verify_rows_per_s"] >= lifecycle_bench.TARGET_ROWS_PER_S,
            "met_backup_p99_ms": all(
                b[m]["p99"] is not None and b[m]["p99"] < lifecycle_bench.TARGET_P99_MS
                for m in ("api", "vacuum")
                if m in b
            ),
        },
    }
    path = save(results, out, "lifecycle")
    table = Table("what", "measured", "naive", "x naive", "target")
    table.add_row(
        f"archive {a['rows']:,} transfers",
        f"{a['archive_rows_per_s']:,.0f} rows/s",
        f"{a['naive']['archive_rows_per_s']:,.0f}",
        f"{a['ratio_archive_to_naive']:.1f}",
        _met(results["targets"]["met_archive_rows_per_s"]),
    )
    table.add_row(
        "verify the archive",
        f"{a['verify_rows_per_s']:,.0f} rows/s",
        f"{a['naive']['verify_rows_per_s']:,.0f}",
        f"{a['ratio_verify_to_naive']:.1f}",
        _met(results["targets"]["met_verify_rows_per_s"]),
    )
    for when in ("quiet", "after"):
        p99 = b[when]["p99"]
        table.add_row(
            f"gateway p99, no backup ({'before' if when == 'quiet' else 'after'} them)",
            "not measured" if p99 is None else f"{p99:.1f} ms",
            "",
            "",
            "",
        )
    for m in ("api", "vacuum"):
        if m in b:
            p99 = b[m]["p99"]
            table.add_row(
                f"gateway p99 during backup ({m}, {b[m]['seconds']:.1f} s, "
                f"{b[m]['callbacks']:,} callbacks)",
                "not measured" if p99 is None else f"{p99:.1f} ms",
                "",
                "",
                _met(p99 is not None and p99 < lifecycle_bench.TARGET_P99_MS and b[m]["verified"]),
            )
    console.print(table)
    console.print(
        f"archive: {a['sqlite_mb']:.0f} MB of SQLite -> {a['archive_mb']:.0f} MB archive; "
        f"backed-up file {b['file_mb']:.0f} MB at {b['rate']:,.0f} callbacks/s"
    )
    console.print(f"saved {path}")
    return results


@app.command("all")
def all_(
    quick: Annotated[bool, typer.Option(help="small sizes: a smoke run, not figures")] = False,
    out: Annotated[Path, typer.Option(help="where JSON and PNG go")] = Path("bench/results"),
) -> None:
    """Every benchmark with its naive baseline, then one table of targets met or missed."""
    scale = 50 if quick else 1
    led = ledger(
        transfers=1_000_000 // scale,
        accounts=100_000 // scale,
        stores="sqlite,postgres",
        submitters=ledger_bench.DEFAULT_SUBMITTERS,
        naive_sample=20_000 // scale,
        pg_dsn=ledger_bench.DEFAULT_PG_DSN,
        out=out,
    )
    gw = gateway(
        rate=gateway_bench.TARGET_REQUESTS_PER_S,
        seconds=20.0 / (10 if quick else 1),
        connections=64,
        players=5_000 // scale,
        naive=True,
        out=out,
    )
    imp = import_(lines=300_000 // scale, naive_sample=10_000 // scale, out=out)
    settle = settlement(
        events=1_000_000 // scale,
        stores="sqlite,postgres",
        naive_sample=20_000 // scale,
        rate=2_000.0,
        seconds=30.0 / (10 if quick else 1),
        out=out,
    )
    recon = reconcile(
        lines=1_000_000 // scale,
        stores="sqlite,postgres",
        naive_sample=5_000 // scale,
        postgres_lines=0,
        out=out,
    )
    rail = rails(
        payouts=100_000 // scale,
        naive_sample=2_000 // scale,
        webhooks=100_000 // scale,
        payments=10_000 // scale,
        out=out,
    )
    pay = payouts(payouts=100_000 // scale, naive_sample=2_000 // scale, out=out)
    alerts(
        signals=20_000 // scale,
        keys=1_000 // scale,
        stores="sqlite,postgres",
        naive_sample=2_000 // scale,
        pg_dsn=alerts_bench.DEFAULT_PG_DSN,
        out=out,
    )
    pages = console_pages(
        transfers=1_000_000 // scale,
        requests=40,
        settlement_events=20_000 // scale,
        consoles=50,
        seconds=10.0 / (5 if quick else 1),
        out=out,
    )
    rsk = risk(
        days=2.0 / (4 if quick else 1),
        per_kind=1 if quick else 2,
        rate=200.0,
        clean_days=7.0 / (7 if quick else 1),
        clean_rate=100.0,
        seed=1,
        behaviour_days=2.0 / (8 if quick else 1),
        forecast_rate=15.0 / (5 if quick else 1),
        out=out,
    )
    life = lifecycle(
        rows=1_000_000 // scale,
        naive_sample=100_000 // scale,
        backup_rows=1_000_000 // scale,
        rate=2_000.0,
        seconds=60.0 / (10 if quick else 1),
        out=out,
    )
    table = Table("issue", "what", "target", "measured", "", title="Targets")
    for r in pay["runs"]:
        table.add_row(
            "28 payouts",
            f"reserved+submitted/s, sqlite, {r['rail']}",
            f"{payouts_bench.TARGET_PER_S:,}",
            f"{r['payouts_per_s']:,.0f}",
            _met(r["payouts_per_s"] >= payouts_bench.TARGET_PER_S),
        )
    for s in led["stores"]:
        table.add_row(
            "2 ledger",
            f"transfers/s, {s['store']}",
            f"{ledger_bench.TARGETS[s['store']]:,}",
            f"{s['ledger']['transfers_per_s']:,.0f}",
            _met(s["targets"]["met_transfers_per_s"]),
        )
        table.add_row(
            "2 ledger",
            f"x naive, {s['store']}",
            f"{ledger_bench.MIN_RATIO_TO_NAIVE}",
            f"{s['ratio_to_naive']:.1f}",
            _met(s["targets"]["met_ratio_to_naive"]),
        )
    main = gw["gateway"]
    table.add_row(
        "3 providers",
        "signed callbacks/s over HTTP",
        f"{gateway_bench.TARGET_REQUESTS_PER_S:,}",
        f"{main['requests_per_s']:,.0f}",
        _met(gw["targets"]["met_requests_per_s"]),
    )
    table.add_row(
        "3 providers",
        "callback p99 ms",
        f"< {gateway_bench.TARGET_P99_MS:.0f}",
        f"{main['latency_ms']['p99']:.1f}",
        _met(gw["targets"]["met_p99_ms"]),
    )
    table.add_row(
        "3 providers",
        "callbacks vs a no-op route",
        "≥ 50%",
        f"{main['ratio_to_noop']:.0%}",
        _met(gw["targets"]["met_half_of_noop"]),
    )
    table.add_row(
        "3 providers",
        "report import events/s",
        f"{ingest_bench.TARGET_EVENTS_PER_S:,}",
        f"{imp['batched']['events_per_s']:,.0f}",
        _met(imp["targets"]["met_events_per_s"]),
    )
    for s in settle["stores"]:
        table.add_row(
            "4 settlement",
            f"replay events/s, {s['store']}",
            f"{settlement_bench.TARGETS[s['store']]:,}",
            f"{s['replay']['events_per_s']:,.0f}",
            _met(s["targets"]["met_events_per_s"]),
        )
        table.add_row(
            "4 settlement",
            f"p99 ms at 2,000/s, {s['store']}",
            f"< {settlement_bench.TARGET_P99_MS:.0f}",
            f"{s['latency']['latency_ms']['p99']:.1f}",
            _met(s["targets"]["met_p99_ms"]),
        )
        table.add_row(
            "4 settlement",
            f"memory growth, 2nd half, {s['store']}",
            "flat",
            f"{s['replay']['rss_growth_second_half_mb']:.1f} MB",
            _met(s["replay"]["rss_growth_second_half_mb"] < 20),
        )
    for s in recon["stores"]:
        table.add_row(
            "5 reconciliation",
            f"report lines/s, {s['store']}",
            f"{reconcile_bench.TARGETS[s['store']]:,}",
            f"{s['sizes'][-1]['run']['lines_per_s']:,.0f}",
            _met(s["targets"]["met_lines_per_s"]),
        )
        run = s["sizes"][-1]["run"]
        table.add_row(
            "5 reconciliation",
            f"precision / recall on injected breaks, {s['store']}",
            f"{reconcile_bench.SCORE_TARGET}",
            f"{run['precision']:.4f} / {run['recall']:.4f}",
            _met(s["targets"]["met_precision_recall"]),
        )
    table.add_row(
        "28 payouts",
        "PSP rail submits/s (fake PSP)",
        f"{rails_bench.TARGET_PAYOUTS_PER_S:,}",
        f"{rail['psp']['payouts_per_s']:,.0f}",
        _met(rail["targets"]["met_payouts_per_s"]),
    )
    table.add_row(
        "26 console",
        f"page p95 ms, {pages['transfers']:,} transfers",
        f"< {console_bench.TARGET_P95_MS:.0f}",
        f"{pages['worst_p95_ms']:.1f}",
        _met(pages["targets"]["met_p95_ms"]),
    )
    score = rsk["incidents"]["score"]
    for what, target, measured, key in (
        ("incident recall", "≥ 0.9", f"{score['recall']:.2f}", "met_recall"),
        ("incident precision", "≥ 0.8", f"{score['precision']:.2f}", "met_precision"),
        (
            "median detection delay",
            "< 120 s",
            f"{score['median_delay_s']:.0f} s",
            "met_median_delay",
        ),
        ("alerts on a clean week", "0", str(rsk["clean"]["alerts"]), "met_clean_week"),
        (
            "detector events/s",
            f"{risk_bench.DETECTOR_EVENTS_PER_S_MIN:,}",
            f"{rsk['incidents']['detector_events_per_s']:,.0f}",
            "met_detector_rate",
        ),
        (
            "forecast MASE vs seasonal naive",
            "≥ 20% better",
            f"{rsk['forecast']['profile']['improvement']:.0%}",
            "met_forecast_mase",
        ),
        (
            "95% interval coverage",
            "92-98%",
            f"{rsk['forecast']['profile']['coverage_95']:.1%}",
            "met_coverage_95",
        ),
        (
            "refit of 100 series",
            "< 30 s",
            f"{rsk['forecast']['refit_100_s']:.1f} s",
            "met_refit_100",
        ),
    ):
        table.add_row("25 risk", what, target, measured, _met(rsk["targets"][key]))
    for what, key in (("archive", "archive_rows_per_s"), ("verify", "verify_rows_per_s")):
        table.add_row(
            "29 lifecycle",
            f"{what} rows/s",
            f"{lifecycle_bench.TARGET_ROWS_PER_S:,}",
            f"{life['archive'][key]:,.0f}",
            _met(life["targets"][f"met_{key}"]),
        )
    table.add_row(
        "29 lifecycle",
        "gateway p99 ms during a backup",
        f"< {lifecycle_bench.TARGET_P99_MS:.0f}",
        " / ".join(
            "-"
            if life["backup"].get(m, {}).get("p99") is None
            else f"{life['backup'][m]['p99']:.1f}"
            for m in ("api", "vacuum")
        ),
        _met(life["targets"]["met_backup_p99_ms"]),
    )
    console.print(table)
