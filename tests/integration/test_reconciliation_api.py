"""Reconciliation over the API: a report uploaded and run, its break report fetched byte
for byte with its SHA-256, breaks listed a page at a time and worked through (audited),
over the embedded (SQLite) and the scaled (PostgreSQL) stores."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

from tally.ingest.lines import ReportFormat
from tally.kernel.limits import ApiLimits
from tests.integration.apiworld import World
from tests.integration.test_api_body_limits import Body, call

EVENTS = (
    "tx_id,kind,operator,player,game_type,amount,occurred_at,round_id,currency\n"
    "a1,bet,op1,p1,slots,10.00,2026-03-02T10:00:00,g1,EUR\n"
    "a2,win,op1,p1,slots,4.00,2026-03-02T10:00:01,g1,EUR\n"
    "b1,bet,op2,p2,slots,3.00,2026-03-02T11:00:00,g2,EUR\n"
)
REPORT = (
    "action_id,action,casino_id,user_id,game_id,currency,amount,created_at,original_action_id\n"
    "a1,bet,op1,p1,g1,EUR,10.00,2026-03-02T10:00:00,\n"
    "a2,win,op1,p1,g1,EUR,4.50,2026-03-02T10:00:01,\n"
    "a9,bet,op1,p1,g1,EUR,2.00,2026-03-02T10:05:00,\n"
)
RUNS = "/v1/reconciliation/runs"
BREAKS = "/v1/reconciliation/breaks"


def _seed(world: World) -> None:
    fmt = ReportFormat("softswiss", ZoneInfo("UTC"), "")
    report = world.bo.ingest.importer.run("events.csv", EVENTS.encode(), fmt)
    assert report.counts.accepted == 3, report.counts


def _run(world: World, body: str = REPORT, who: str = "finance") -> Any:
    return world.client.post(
        f"{RUNS}?provider=softswiss&name=ss-0302.csv",
        content=body.encode(),
        headers={**world.headers(who), "content-type": "text/csv"},
    )


def test_a_report_is_run_and_its_break_report_comes_back_byte_for_byte_with_its_sha(
    world: World,
):
    _seed(world)
    r = _run(world)
    assert r.status_code == 201, r.text
    run = r.json()["run"]
    assert (run["lines"], run["refused"], run["breaks"], run["status"]) == (3, 0, 3, "done")
    for fmt, media in (("json", "application/json"), ("csv", "text/csv")):
        doc = world.client.get(
            f"{RUNS}/{run['id']}/report?format={fmt}", headers=world.headers("auditor")
        )
        assert doc.status_code == 200 and doc.headers["content-type"].startswith(media)
        sha = hashlib.sha256(doc.content).hexdigest()
        assert doc.headers["X-Report-SHA256"] == sha == run[f"{fmt}_sha256"]
    listed = world.client.get(RUNS, headers=world.headers("operations")).json()
    assert [x["id"] for x in listed["items"]] == [run["id"]] and listed["next_cursor"] is None
    assert world.client.get(f"{RUNS}/999/report", headers=world.headers("auditor")).status_code == (
        404
    )


def test_the_same_file_twice_is_a_conflict_and_a_bad_one_is_refused_whole(world: World):
    _seed(world)
    assert _run(world).status_code == 201
    again = _run(world)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "report_taken")
    bad = _run(world, "who,what\n1,2\n")
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "report_refused")
    unknown = world.client.post(
        f"{RUNS}?provider=nobody&name=x.csv", content=b"a\n", headers=world.headers("finance")
    )
    assert unknown.status_code == 422 and "unknown" in unknown.json()["error"]["message"]
    runs = world.client.get(RUNS, headers=world.headers("finance")).json()["items"]
    assert len(runs) == 1  # neither refusal left a run behind


def test_a_report_over_the_routes_limit_is_refused_at_the_edge_unread(world: World):
    over = ApiLimits().reconciliation_body_max_bytes + 1
    body = call(
        world, RUNS, Body(1), token=world.tokens["finance"], length=over,
        query="provider=softswiss&name=r.csv",
    )  # fmt: skip
    assert (body.status, body.consumed) == (413, 0)


def test_breaks_are_filtered_and_paged_by_the_kernels_cursor_rule(world: World):
    _seed(world)
    assert _run(world).status_code == 201
    h = world.headers("finance")
    kinds = {b["kind"] for b in world.client.get(BREAKS, headers=h).json()["items"]}
    assert kinds == {"amount_mismatch", "missing_in_tally", "missing_in_report"}
    only = world.client.get(f"{BREAKS}?kind=missing_in_tally", headers=h).json()["items"]
    assert [(b["report_ref"], b["difference"], b["source"]) for b in only] == [
        ("a9:bet", "2.00", "ss-0302.csv:4")
    ]
    assert world.client.get(f"{BREAKS}?provider=pragmatic", headers=h).json()["items"] == []
    seen, cursor = [], None
    while True:
        url = f"{BREAKS}?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = world.client.get(url, headers=h).json()
        seen += [b["id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 3 and seen == sorted(seen)
    bad = world.client.get(f"{BREAKS}?cursor=abc", headers=h)
    assert bad.status_code == 422


def test_a_break_is_assigned_and_closed_with_a_note_each_step_on_the_audit_trail(world: World):
    _seed(world)
    assert _run(world).status_code == 201
    h = world.headers("finance")
    (brk,) = world.client.get(f"{BREAKS}?kind=amount_mismatch", headers=h).json()["items"]
    url = f"{BREAKS}/{brk['id']}"
    r = world.client.post(f"{url}/assignment", headers=h, json={"owner": "ana"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["owner"]) == ("investigating", "ana")
    r = world.client.post(f"{url}/status", headers=h, json={"status": "written_off"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "note_required")
    r = world.client.post(
        f"{url}/status", headers=h, json={"status": "written_off", "note": "tip, agreed"}
    )
    assert r.status_code == 200 and r.json()["status"] == "written_off"
    r = world.client.post(f"{url}/status", headers=h, json={"status": "resolved", "note": "x"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "break_closed")
    shown = world.client.get(url, headers=world.headers("auditor")).json()
    assert [(x["status"], x["note"]) for x in shown["history"]] == [
        ("investigating", ""),
        ("written_off", "tip, agreed"),
    ]
    assert shown["history"][0]["by"].startswith("user:")
    actions = [
        rec.entry.action
        for rec in world.bo.audit.page(limit=500).items
        if rec.entry.target == f"recon_break:{brk['id']}"
    ]
    assert actions == ["reconciliation.break_assigned", "reconciliation.break_written_off"]
    r = world.client.post(f"{url}/reopen", headers=h, json={"note": "provider disputes it"})
    assert r.status_code == 200 and r.json()["status"] == "open"
    r = world.client.post(f"{url}/reopen", headers=h, json={"note": "again"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "break_not_closed")
    missing = world.client.post(f"{BREAKS}/999/assignment", headers=h, json={"owner": "ana"})
    assert missing.status_code == 404


def test_an_fx_rounding_break_is_adjusted_by_the_rule_and_reopening_reverses_it(world: World):
    _seed(world)
    service = world.bo.reconciliation
    service.rules["softswiss"] = replace(service.rules["softswiss"], fx_rounding=50)
    r = _run(world)
    assert r.status_code == 201, r.text
    found = world.client.get(f"{BREAKS}?kind=fx_rounding", headers=world.headers("finance"))
    (fx,) = found.json()["items"]
    assert (fx["status"], fx["adjustment"]) == ("resolved", f"recon:fx:{fx['id']}")
    assert fx["history"][-1]["by"] == "rule:reconciliation.fx_rounding"
    moved = world.app.ledger.get_transfer(f"recon:fx:{fx['id']}")
    assert moved is not None and moved.amount == 50
    assert moved.debit_account_id == "provider:softswiss:recon_clearing:EUR"
    back = world.client.post(
        f"{BREAKS}/{fx['id']}/reopen", json={"note": "report re-issued"},
        headers=world.headers("finance"),
    )  # fmt: skip
    assert back.status_code == 200, back.text
    assert back.json()["adjustment"] == f"recon:fx:{fx['id']}:reversal"
    assert world.app.ledger.get_transfer(f"recon:fx:{fx['id']}:reversal") is not None
    actions = [
        rec.entry.action
        for rec in world.bo.audit.page(limit=500).items
        if rec.entry.target == f"recon_break:{fx['id']}"
    ]
    assert actions == ["reconciliation.break_adjusted", "reconciliation.break_reopened"]


def test_a_missing_line_is_re_driven_as_an_event_once_and_its_break_resolved(world: World):
    _seed(world)
    assert _run(world).status_code == 201
    found = world.client.get(f"{BREAKS}?kind=missing_in_tally", headers=world.headers("finance"))
    (missing,) = found.json()["items"]
    url = f"{BREAKS}/{missing['id']}/redrive"
    r = world.client.post(url, json={"game_type": "slots"}, headers=world.headers("finance"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["event_key"], body["appended"]) == ("softswiss:a9:bet", "accepted")
    assert body["break"]["status"] == "resolved"
    assert "softswiss:a9:bet from ss-0302.csv:4" in body["break"]["history"][-1]["note"]
    again = world.client.post(url, json={"game_type": "slots"}, headers=world.headers("finance"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "break_closed"
    world.client.post(
        f"{BREAKS}/{missing['id']}/reopen", json={"note": "again"}, headers=world.headers("finance")
    )
    twice = world.client.post(url, json={"game_type": "slots"}, headers=world.headers("finance"))
    assert twice.status_code == 200 and twice.json()["appended"] == "duplicate"
    keys = [e.key for _, e in world.bo.ingest.log.read(0, 100)]
    assert keys.count("softswiss:a9:bet") == 1
    other = world.client.get(f"{BREAKS}?kind=amount_mismatch", headers=world.headers("finance"))
    (mismatch,) = other.json()["items"]
    refused = world.client.post(
        f"{BREAKS}/{mismatch['id']}/redrive", json={"game_type": "slots"},
        headers=world.headers("finance"),
    )  # fmt: skip
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "break_not_redriven"
