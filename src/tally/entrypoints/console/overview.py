"""The overview's figures in three layers, each cell with the key the live feed updates.

Business figures come from the settlement context's own functions (``live_totals``,
``fees_accrued``, ``commissions_accrued``) over the figures the store holds, exactly as
the API's /v1/settlement routes compute them; a partner sees only the commissions of
its own subtree. Application and infrastructure figures come from the process's stores,
its metrics and (when configured) the gateway's metrics endpoint.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tally.app.bootstrap import process_state
from tally.app.dashboards import FIGURES, console_charts
from tally.app.metrics import ProcessState
from tally.auth.model import OwnerRef, Principal
from tally.auth.policy import Permission
from tally.auth.scope import may_see_owner
from tally.entrypoints.api.deps import Ctx
from tally.entrypoints.api.routers import alerts as alert_routes
from tally.kernel.alerts import Severity
from tally.kernel.currency import is_known
from tally.kernel.money import format_amount
from tally.ledger.model import OwnerKind
from tally.risk.alerts_model import AlertStatus
from tally.settlement.figures import (
    Dimension,
    TotalsRow,
    commissions_accrued,
    fees_accrued,
    live_totals,
)

if TYPE_CHECKING:
    from tally.entrypoints.console.gateway_metrics import GatewayMetrics

# The dimensions the business layer is cut by, in the order shown.
BUSINESS_DIMENSIONS = (
    Dimension.REGION,
    Dimension.PROVIDER,
    Dimension.OPERATOR,
    Dimension.GAME_TYPE,
)
CHART_WIDTH = 100  # bars are drawn in a 0..100 viewBox


def money(minor: int, currency: str) -> str:
    """As the API writes an amount: a decimal string in the currency's minor units."""
    return format_amount(minor, currency) if is_known(currency) else str(minor)


@dataclass(frozen=True, slots=True)
class Cell:
    key: str  # the live feed's key for this value ("" for a label)
    text: str
    numeric: bool = True


@dataclass(frozen=True, slots=True)
class Table:
    key: str
    title: str
    columns: tuple[str, ...]
    rows: list[list[Cell]]
    empty: str = "nothing yet"


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    key: str
    width: int  # 0..CHART_WIDTH, the share of the largest bar of its currency
    text: str
    negative: bool = False


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    unit: str
    bars: list[Bar]


@dataclass(frozen=True, slots=True)
class Stat:
    label: str
    cell: Cell
    state: str = ""  # "ok", "warn", "bad" or "" (no judgement)


@dataclass
class Overview:
    business: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    application: list[Stat] = field(default_factory=list)
    providers: Table | None = None
    infrastructure: list[Stat] = field(default_factory=list)

    def live(self) -> dict[str, str]:
        """Every value with its key: what the live feed sends."""
        out: dict[str, str] = {}
        for table in [*self.business, *([self.providers] if self.providers else [])]:
            for row in table.rows:
                out.update((c.key, c.text) for c in row if c.key)
        for stat in [*self.application, *self.infrastructure]:
            out[stat.cell.key] = stat.cell.text
        for chart in self.charts:
            for bar in chart.bars:
                out[bar.key] = bar.text
                out[bar.key + ".w"] = str(bar.width)
        return out


def _label(text: str) -> Cell:
    return Cell("", text or "-", numeric=False)


def _figure(row: TotalsRow, name: str) -> int:
    """One figure of a live-totals row, named as the API's /v1/settlement/figures names it."""
    t = row.totals
    values = {
        "turnover": t.turnover,
        "wins": t.wins,
        "ggr": t.ggr,
        "bonuses": t.bonuses,
        "jackpot_contributions": t.jackpot_contributions,
        "ngr": row.ngr,
    }
    return values[name]


def business(c: Ctx, p: Principal) -> tuple[list[Table], list[Chart]]:
    figures = c.app.settlement_store.load_figures()
    tables: list[Table] = []
    charts: list[Chart] = []
    if p.may(Permission.SETTLEMENT_FIGURES_READ):
        by_dim = {d: live_totals(figures, [d]) for d in BUSINESS_DIMENSIONS}
        for panel in console_charts():
            assert panel.figure is not None
            name, dim = panel.figure
            found = by_dim.get(dim) or live_totals(figures, [dim])
            values = [
                (f"{k[dim.value] or '(none)'} {k['currency']}", k["currency"], _figure(r, name))
                for r in found
                for k in (dict(r.key),)
            ]
            charts.append(_chart(panel.id, panel.title, values))
        for dim in BUSINESS_DIMENSIONS:
            rows: list[list[Cell]] = []
            for row in by_dim[dim]:
                key = dict(row.key)
                value, cur = key[dim.value], key["currency"]
                base = f"t.{dim.value}.{value}.{cur}"
                cells = [_label(value), _label(cur)]
                cells += [
                    Cell(f"{base}.{name}", money(_figure(row, name), cur)) for name in FIGURES
                ]
                rows.append(cells)
            tables.append(
                Table(
                    f"totals-{dim.value}",
                    f"Open periods by {dim.value.replace('_', ' ')}",
                    (
                        dim.value.replace("_", " "),
                        "currency",
                        "turnover",
                        "wins",
                        "GGR",
                        "bonuses",
                        "jackpot",
                        "NGR",
                    ),
                    rows,
                )
            )
        fee_rows = [
            [
                _label(k["contract"]),
                _label(k["operator"]),
                _label(k["period"]),
                _label(k["status"]),
                Cell(
                    f"f.{k['contract']}.{k['operator']}.{k['period']}.{k['version']}",
                    money(r.accrued, k["currency"]) + f" {k['currency']}",
                ),
            ]
            for r in fees_accrued(figures, c.app.settlement_config.contracts())
            for k in (dict(r.key),)
        ]
        tables.append(
            Table(
                "fees",
                "Provider fees accrued",
                ("contract", "operator", "period", "status", "fee"),
                fee_rows,
            )
        )
    if p.may(Permission.COMMISSIONS_READ):
        visible = c.bo.scope.visible_owners(p)
        commission_rows = [
            [
                _label(k["agent"]),
                _label(k["operator"]),
                _label(k["period"]),
                Cell(
                    f"c.{k['agent']}.{k['operator']}.{k['period']}.{k['currency']}",
                    money(r.accrued, k["currency"]) + f" {k['currency']}",
                ),
            ]
            for r in commissions_accrued(figures)
            for k in (dict(r.key),)
            if may_see_owner(visible, OwnerRef(OwnerKind.PARTNER, k["agent"]))
        ]
        tables.append(
            Table(
                "commissions",
                "Partner commissions accrued",
                ("agent", "operator", "period", "commission"),
                commission_rows,
            )
        )
    return tables, charts


def _chart(key: str, title: str, values: list[tuple[str, str, int]]) -> Chart:
    """Bars scaled within each currency (a yen is not a euro); negative ones marked."""
    top: dict[str, int] = {}
    for _, cur, v in values:
        top[cur] = max(top.get(cur, 0), abs(v))
    bars = [
        Bar(
            label,
            f"b.{key}.{label}",
            (abs(v) * CHART_WIDTH) // top[cur] if top[cur] else 0,
            money(v, cur),
            negative=v < 0,
        )
        for label, cur, v in values
    ]
    return Chart(key, title, "each currency on its own scale", bars)


def _rss_bytes() -> int:
    """This process's resident memory (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"  # a size for people, not money


ALERTS_COUNTED = 500  # open alerts read for the overview's counts (the API's page at most)


def open_by_severity(c: Ctx, p: Principal) -> dict[str, int]:
    """Open (not yet acknowledged) alerts the viewer may see, counted by severity, most
    urgent first: for the Overview's application layer."""
    if not p.may(Permission.ALERTS_READ):
        return {}
    page = alert_routes.list_alerts(
        c, p, status=AlertStatus.OPEN, active=False, limit=ALERTS_COUNTED
    )
    counts = Counter(a.severity for a in page.items)
    ordered = sorted(Severity, key=lambda s: -s.order)
    return {s.value: counts.get(s, 0) for s in ordered}


def application(
    c: Ctx, p: Principal, state: ProcessState | None, gateway: GatewayMetrics | None
) -> tuple[list[Stat], Table | None]:
    stats: list[Stat] = []
    if state is not None and p.may(Permission.QUARANTINE_READ):
        problems = len(c.app.settlement_store.problems())
        held = state.quarantine_open
        stats.append(
            Stat(
                "input quarantine (open)", Cell("a.quarantine", str(held)), "warn" if held else "ok"
            )
        )
        stats.append(
            Stat("events settlement refused", Cell("a.problems", str(problems)),
                 "warn" if problems else "ok")
        )  # fmt: skip
    if state is not None and p.may(Permission.METRICS_READ):
        lag = state.settlement_lag
        stats.append(
            Stat("settlement lag (events)", Cell("a.lag", str(lag)), "warn" if lag else "ok")
        )
        stats.append(
            Stat("transfers committed (this process)",
                 Cell("a.committed", str(c.app.ledger.stats.transfers)))
        )  # fmt: skip
    for severity, count in open_by_severity(c, p).items():
        state_of = ("bad" if severity == "critical" else "warn") if count else "ok"
        stats.append(
            Stat(f"open alerts ({severity})", Cell(f"a.alerts.{severity}", str(count)), state_of)
        )
    providers = None
    if p.may(Permission.METRICS_READ) and gateway is not None:
        providers = gateway.table()
    return stats, providers


def infrastructure(c: Ctx, p: Principal, state: ProcessState | None) -> list[Stat]:
    if state is None or not p.may(Permission.METRICS_READ):
        return []
    stats = [
        Stat(f"{name} store", Cell(f"i.{name}", "up" if up else "DOWN"), "ok" if up else "bad")
        for name, up in state.stores_up.items()
    ]
    settings = c.app.settings
    if settings.mode == "embedded":
        size = sum(
            Path(f"{settings.sqlite_path}{suffix}").stat().st_size
            for suffix in ("", "-wal")
            if Path(f"{settings.sqlite_path}{suffix}").exists()
        )
        stats.append(Stat("SQLite file (with WAL)", Cell("i.size", _mib(size))))
    else:
        stats.append(Stat("store", Cell("i.size", "PostgreSQL (size: its own monitoring)")))
    depth = state.writer_queue
    stats.append(
        Stat("ledger writer queue", Cell("i.queue", str(depth)), "warn" if depth > 100 else "ok")
    )
    stats.append(Stat("process memory (RSS)", Cell("i.rss", _mib(_rss_bytes()))))
    return stats


def build(c: Ctx, p: Principal, gateway: GatewayMetrics | None = None) -> Overview:
    tables, charts = business(c, p)
    wants_state = p.may(Permission.METRICS_READ) or p.may(Permission.QUARANTINE_READ)
    # One reading of the process's state, the same the metrics publish at a scrape.
    state = process_state(c.app, c.bo.store, c.bo.ingest) if wants_state else None
    stats, providers = application(c, p, state, gateway)
    return Overview(tables, charts, stats, providers, infrastructure(c, p, state))


class LiveCache:
    """One overview per view at most every ``max_age_s``, however many consoles are open:
    the live feeds of 50 consoles with the same view read the stores once per period, not
    50 times. One feed builds a stale view while the others wait for it (single flight),
    and a fresh view is answered without leaving the event loop (``peek``)."""

    def __init__(self, max_age_s: float = 1.0) -> None:
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._kept: dict[tuple[object, ...], tuple[float, dict[str, str]]] = {}
        self._building: dict[tuple[object, ...], threading.Lock] = {}
        self.builds = 0  # how many times a view was built (the benchmark reads it)

    def peek(self, view: tuple[object, ...]) -> dict[str, str] | None:
        """The view's values if they are fresh, else None (never blocks for long)."""
        with self._lock:
            found = self._kept.get(view)
        if found is not None and time.monotonic() - found[0] < self.max_age_s:
            return found[1]
        return None

    def get(self, view: tuple[object, ...], make: Callable[[], dict[str, str]]) -> dict[str, str]:
        found = self.peek(view)
        if found is not None:
            return found
        with self._lock:
            gate = self._building.setdefault(view, threading.Lock())
        with gate:
            found = self.peek(view)  # built by another feed while this one waited
            if found is not None:
                return found
            values = make()
            with self._lock:
                self.builds += 1
                self._kept[view] = (time.monotonic(), values)
                if len(self._kept) > 256:  # many distinct views: keep the newest only
                    newest = sorted(self._kept.items(), key=lambda kv: kv[1][0])[-128:]
                    self._kept = dict(newest)
                    self._building = {k: v for k, v in self._building.items() if k in self._kept}
        return values
