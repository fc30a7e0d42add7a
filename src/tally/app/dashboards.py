"""Dashboards as code: one catalogue of panels and alerting rules.

From it come the console's charts (the business panels, drawn from the settlement
figures), a provisioned Grafana dashboard (the panels with a PromQL query) and a
Prometheus alerting-rules file. ``tests/unit/test_dashboards.py`` checks that every
metric a panel or rule queries is one Tally exports, and that the files under
``deploy/`` are what this module generates (``tally dashboards export``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from tally.settlement.figures import Dimension


class Layer(StrEnum):
    BUSINESS = "business"
    APPLICATION = "application"
    INFRASTRUCTURE = "infrastructure"


# The figures a business panel may chart (fields of a live-totals row).
FIGURES = ("turnover", "wins", "ggr", "bonuses", "jackpot_contributions", "ngr")
_METRIC = re.compile(r"\b((?:tally|process)_[a-z0-9_]+)\b")
CALLBACKS = 'route=~"/providers/.*"'
REFUSED = f'{CALLBACKS},status=~"4..|5.."'


@dataclass(frozen=True, slots=True)
class Panel:
    id: str
    title: str
    layer: Layer
    unit: str  # Grafana's unit names: "reqps", "s", "bytes", "short", "currency"
    owner: str  # who acts on it: "finance", "operations", "platform"
    query: str = ""  # PromQL; "" for a panel only the console draws
    # A console chart from the settlement figures: (figure, dimension).
    figure: tuple[str, Dimension] | None = None

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(_METRIC.findall(self.query))


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    expr: str
    for_: str
    severity: str  # "warning" or "critical"
    summary: str
    owner: str

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(_METRIC.findall(self.expr))


def _by(dimension: Dimension) -> str:
    return dimension.value.replace("_", " ")


PANELS: tuple[Panel, ...] = (
    *(
        Panel(f"ggr-{d.value}", f"GGR by {_by(d)}", Layer.BUSINESS, "currency", "finance",
              figure=("ggr", d))
        for d in (Dimension.REGION, Dimension.PROVIDER, Dimension.OPERATOR, Dimension.GAME_TYPE)
    ),
    Panel(
        "callbacks-rate", "Provider callbacks per second", Layer.APPLICATION, "reqps",
        "operations", f"sum by (route) (rate(tally_http_requests_total{{{CALLBACKS}}}[1m]))",
    ),
    Panel(
        "callbacks-refused", "Provider callbacks refused per second", Layer.APPLICATION,
        "reqps", "operations",
        f"sum by (route, status) (rate(tally_http_requests_total{{{REFUSED}}}[5m]))",
    ),
    Panel(
        "callbacks-p99", "Provider callback latency p99", Layer.APPLICATION, "s", "operations",
        "histogram_quantile(0.99, sum by (le, route) "
        f"(rate(tally_http_request_seconds_bucket{{{CALLBACKS}}}[5m])))",
    ),
    Panel(
        "api-p95", "Back-office API and console latency p95", Layer.APPLICATION, "s",
        "platform",
        "histogram_quantile(0.95, sum by (le, route) "
        # Not the console's live feed: a stream that lasts its whole life, not a request.
        '(rate(tally_http_request_seconds_bucket{route!~"/providers/.*|/console/live"}[5m])))',
    ),
    Panel(
        "quarantine-open", "Input quarantine: open entries", Layer.APPLICATION, "short",
        "operations", "tally_input_quarantine_open",
    ),
    Panel(
        "settlement-lag", "Settlement lag (events not yet settled)", Layer.APPLICATION,
        "short", "finance", "tally_settlement_lag_events",
    ),
    Panel(
        "ledger-rate", "Transfers committed per second", Layer.APPLICATION, "short",
        "platform", "rate(tally_ledger_committed_transfers_total[1m])",
    ),
    Panel(
        "store-up", "Stores answering", Layer.INFRASTRUCTURE, "short", "platform",
        "tally_store_up",
    ),
    Panel(
        "commit-p99", "Ledger group-commit latency p99", Layer.INFRASTRUCTURE, "s", "platform",
        "histogram_quantile(0.99, sum by (le) (rate(tally_ledger_commit_seconds_bucket[5m])))",
    ),
    Panel(
        "writer-queue", "Ledger writer queue", Layer.INFRASTRUCTURE, "short", "platform",
        "tally_ledger_writer_queue",
    ),
    Panel(
        "memory", "Process resident memory", Layer.INFRASTRUCTURE, "bytes", "platform",
        "process_resident_memory_bytes",
    ),
    Panel(
        "audit-head", "Audit chain head (sequence)", Layer.INFRASTRUCTURE, "short", "platform",
        "max(tally_audit_head_seq)",
    ),
)  # fmt: skip

RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "TallyStoreDown", "min by (instance, store) (tally_store_up) == 0", "1m", "critical",
        "A Tally store does not answer ({{ $labels.store }} on {{ $labels.instance }})",
        "platform",
    ),
    AlertRule(
        "TallySettlementLagging", "max(tally_settlement_lag_events) > 10000", "5m", "warning",
        "Settlement is more than 10,000 events behind the event log", "finance",
    ),
    AlertRule(
        "TallyQuarantineGrowing", "delta(tally_input_quarantine_open[15m]) > 100", "0m",
        "warning", "More than 100 inputs refused into the quarantine in 15 minutes",
        "operations",
    ),
    AlertRule(
        "TallyCallbackRefusalsHigh",
        f"sum by (route) (rate(tally_http_requests_total{{{REFUSED}}}[5m]))"
        f" / sum by (route) (rate(tally_http_requests_total{{{CALLBACKS}}}[5m])) > 0.05",
        "5m", "warning", "Over 5% of {{ $labels.route }} callbacks refused", "operations",
    ),
    AlertRule(
        "TallyCallbackLatencyHigh",
        "histogram_quantile(0.99, sum by (le, route) "
        f"(rate(tally_http_request_seconds_bucket{{{CALLBACKS}}}[5m]))) > 0.25",
        "10m", "warning", "Callback p99 latency over 250 ms on {{ $labels.route }}",
        "operations",
    ),
    AlertRule(
        "TallyWriterBacklog", "max(tally_ledger_writer_queue) > 1000", "2m", "critical",
        "The ledger writer has over 1,000 submissions waiting", "platform",
    ),
)  # fmt: skip


def console_charts() -> list[Panel]:
    """The panels the console's overview draws, in catalogue order."""
    return [p for p in PANELS if p.figure is not None]


def grafana_dashboard() -> dict[str, Any]:
    """A Grafana dashboard (schema 39) of every panel with a query, a row per layer."""
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    for layer in Layer:
        shown = [p for p in PANELS if p.layer is layer and p.query]
        if not shown:
            continue
        panels.append(
            {"id": next_id, "type": "row", "title": layer.value.capitalize(), "collapsed": False,
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}
        )  # fmt: skip
        next_id += 1
        y += 1
        for i, p in enumerate(shown):
            panels.append(
                {
                    "id": next_id,
                    "type": "timeseries",
                    "title": p.title,
                    "description": f"owner: {p.owner}; tally panel {p.id}",
                    "datasource": datasource,
                    "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": y + 8 * (i // 2)},
                    "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                    "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                    "targets": [{"refId": "A", "expr": p.query, "datasource": datasource}],
                }
            )
            next_id += 1
        y += 8 * ((len(shown) + 1) // 2)
    return {
        "uid": "tally-overview",
        "title": "Tally",
        "tags": ["tally"],
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "panels": panels,
    }


def prometheus_rules() -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": "tally",
                "rules": [
                    {
                        "alert": r.name,
                        "expr": r.expr,
                        "for": r.for_,
                        "labels": {"severity": r.severity, "owner": r.owner},
                        "annotations": {"summary": r.summary},
                    }
                    for r in RULES
                ],
            }
        ]
    }


GRAFANA_PROVIDER = {
    "apiVersion": 1,
    "providers": [
        {
            "name": "tally",
            "type": "file",
            "disableDeletion": True,
            "options": {"path": "/var/lib/grafana/dashboards/tally"},
        }
    ],
}


def files() -> dict[str, str]:
    """Path (relative to the output folder) and text of every generated file. The YAML
    files are written as JSON, which every YAML 1.2 reader (Prometheus, Grafana) reads."""

    def text(value: Any) -> str:
        return json.dumps(value, indent=2, sort_keys=False) + "\n"

    return {
        "grafana/dashboards/tally.json": text(grafana_dashboard()),
        "grafana/provisioning/dashboards/tally.yaml": text(GRAFANA_PROVIDER),
        "prometheus/tally-rules.yml": text(prometheus_rules()),
    }


def write(out: Path) -> list[Path]:
    written = []
    for name, body in files().items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        written.append(path)
    return written
