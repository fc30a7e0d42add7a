"""Dashboards as code: every metric a panel or rule queries is one Tally exports, the files
under deploy/ are what the catalogue generates, and the console draws the catalogue's charts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tally.app import dashboards as d
from tally.app.metrics import Metrics, ProcessState
from tally.audit.chain import AuditHead
from tally.settlement.figures import Dimension

ROOT = Path(__file__).resolve().parents[2]


def exported() -> set[str]:
    """Every sample name a Tally process (API or gateway: the same Metrics) exports once
    it has served a callback and a request, committed a batch and published its state."""
    m = Metrics()
    m.observe_request("/providers/acme", "POST", 200, 0.002)
    m.observe_request("/providers/acme", "POST", 401, 0.001)
    m.observe_request("/v1/accounts/{account_id}", "GET", 200, 0.003)
    m.observe_commit(10, 0.004)
    m.publish_state(lambda: ProcessState(1, 2, 3, {"ledger": True, "backoffice": False}))
    m.publish_audit_head(lambda: AuditHead(7, "abc", "seal"))
    text = m.render().decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    return names


def test_every_metric_a_panel_or_rule_queries_is_exported() -> None:
    names = exported()
    queried = {m for p in d.PANELS for m in p.metrics} | {m for r in d.RULES for m in r.metrics}
    assert queried, "the catalogue queries nothing"
    missing = queried - names
    assert not missing, f"queried but not exported: {sorted(missing)}"


def test_a_metric_that_is_not_exported_would_be_caught() -> None:
    # The check reads names out of the query text: a typo is a name nobody exports.
    panel = d.Panel("x", "x", d.Layer.APPLICATION, "short", "platform", "rate(tally_nope[1m])")
    assert panel.metrics == {"tally_nope"}
    assert not panel.metrics <= exported()


def test_every_panel_has_an_owner_a_unit_and_a_unique_id() -> None:
    ids = [p.id for p in d.PANELS]
    assert len(ids) == len(set(ids))
    for p in d.PANELS:
        assert p.owner in {"finance", "operations", "platform"}
        assert p.unit
        # A panel is drawn somewhere: by Grafana (a query) or by the console (a figure).
        assert bool(p.query) or p.figure is not None, p.id
    for r in d.RULES:
        assert r.severity in {"warning", "critical"} and r.owner and r.metrics


def test_the_console_charts_come_from_the_catalogue() -> None:
    charts = d.console_charts()
    assert {p.figure for p in charts} == {
        ("ggr", Dimension.REGION),
        ("ggr", Dimension.PROVIDER),
        ("ggr", Dimension.OPERATOR),
        ("ggr", Dimension.GAME_TYPE),
    }
    for p in charts:
        assert p.figure is not None and p.figure[0] in d.FIGURES


def test_the_grafana_dashboard_holds_every_queried_panel_without_overlap() -> None:
    board = d.grafana_dashboard()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    queries = {t["expr"] for p in panels for t in p["targets"]}
    assert queries == {p.query for p in d.PANELS if p.query}
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in board["panels"]:
        g = p["gridPos"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not (mine & cells), p["title"]
        cells |= mine
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24


@pytest.mark.parametrize("name", sorted(d.files()))
def test_the_files_under_deploy_are_what_the_catalogue_generates(name: str) -> None:
    path = ROOT / "deploy" / name
    assert path.exists(), f"run `tally dashboards export` to write {name}"
    assert path.read_text() == d.files()[name], f"{name} is stale: run `tally dashboards export`"
    json.loads(path.read_text())  # JSON, hence YAML 1.2 for Prometheus and Grafana
