"""The provider-side view of a seeded world reconciled against Tally's event log: every
injected break found and classified right, nothing else reported.

Each provider's report is written as that provider would (its layout, CSV or JSON Lines,
its zone) with labelled faults; Tally's events go through a real SQLite event log; the
real ReconciliationService reads the written files. The breaks expected are derived
from the labels alone (``expected_breaks``), never from the matcher's code.

On failure the seed is in the test id; replay it with ``TALLY_SIM_SEEDS=<seed>``.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tally.adapters.sqlite.backoffice import SqliteBackofficeStore
from tally.adapters.sqlite.events import SqliteEventLog
from tally.adapters.sqlite.quarantine import SqliteInputQuarantine
from tally.adapters.sqlite.reconciliation import SqliteReconciliationStore
from tally.audit.chain import Sealer
from tally.audit.service import Auditing
from tally.kernel.clock import FixedClock
from tally.reconciliation.service import ReconciliationService
from tally.reconciliation.tally_side import LogTallySide
from tally.simulation.activity import generate
from tally.simulation.reports import Fault, Label, ProviderView, ReportFaults, provider_view
from tally.simulation.world import build_world
from tests.simulation.test_settlement_simulation import SEEDS
from tests.support.alerts import RecordingAlertSink

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
MINUTES = 4 * 24 * 60  # four days: every zone has inner days with midnights between them
RATE = 1.5  # rounds per minute per unit of regional weight
FLOOR = 0.99  # precision and recall, per break kind and overall

# (break kind, report_ref, tally_key), per provider.
Expected = tuple[str, str, str, str]


def expected_breaks(label: Label) -> set[Expected]:
    """The breaks a label must produce, from what the fault did to the line: the
    report names a line ``tx_id:kind``, Tally by its key ``provider:tx_id:kind``."""
    p = label.provider
    ref = f"{label.tx_id}:{label.kind}"
    key = f"{p}:{label.tx_id}:{label.kind}"
    both = {
        Fault.AMOUNT: "amount_mismatch",
        Fault.CURRENCY: "currency_mismatch",
        Fault.MIDNIGHT: "timing",
        Fault.FX_ROUNDING: "fx_rounding",
    }
    if label.fault in both:
        return {(p, both[label.fault], ref, key)}
    if label.fault is Fault.DROPPED_CALLBACK:
        return {(p, "missing_in_tally", ref, "")}
    if label.fault is Fault.LEFT_OUT:
        return {(p, "missing_in_report", "", key)}
    if label.fault is Fault.DUPLICATE:
        return {(p, "duplicate_in_report", ref, "")}
    # A missed rollback: the lone rollback line on the side that has it, and its
    # original, voided on one side only.
    original = (
        p, "rollback_mismatch", f"{label.original_tx_id}:{label.original_kind}",
        f"{p}:{label.original_tx_id}:{label.original_kind}",
    )  # fmt: skip
    if label.fault is Fault.ROLLBACK_MISSED_BY_TALLY:
        return {original, (p, "rollback_mismatch", ref, "")}
    assert label.fault is Fault.ROLLBACK_MISSED_BY_REPORT
    return {original, (p, "rollback_mismatch", "", key)}


@dataclass(frozen=True)
class Score:
    kind: str
    expected: int
    found: int
    right: int

    @property
    def precision(self) -> float:
        return self.right / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        return self.right / self.expected if self.expected else 1.0


def scores(expected: set[Expected], found: set[Expected]) -> list[Score]:
    """Per break kind, then overall ("all"): a found break is right when the labels
    expect exactly it (same provider, kind and lines)."""
    right = expected & found
    kinds = sorted({e[1] for e in expected | found})
    out = [
        Score(
            k,
            sum(1 for e in expected if e[1] == k),
            sum(1 for f in found if f[1] == k),
            sum(1 for r in right if r[1] == k),
        )
        for k in kinds
    ]
    return [*out, Score("all", len(expected), len(found), len(right))]


def reconcile(view: ProviderView, tmp: Path) -> tuple[set[Expected], list[str]]:
    """Tally's events into an SQLite event log, each report written to a file and run
    through the real service: the breaks found, and any line refused."""
    path = tmp / "tally.sqlite"
    log = SqliteEventLog(path)
    audit = SqliteBackofficeStore(path, Sealer(b"k" * 32))
    quarantine = SqliteInputQuarantine(path)
    store = SqliteReconciliationStore(path)
    try:
        for i in range(0, len(view.events), 5_000):
            log.append(view.events[i : i + 5_000])
        service = ReconciliationService(
            store, LogTallySide(log), quarantine, FixedClock(START), view.rules, view.layouts,
            alerts=RecordingAlertSink(),
        )  # fmt: skip
        auditing = Auditing(audit, "user:sim", "test")
        found: set[Expected] = set()
        refused: list[str] = []
        for report in view.reports:
            written = tmp / report.name
            written.write_bytes(report.data)
            out = service.run(written.name, written.read_bytes(), report.provider, auditing)
            refused += out.refused_lines
            assert out.run.breaks == len(out.result.breaks)
            for b in out.result.breaks:
                found.add((b.provider, b.kind.code, b.report_ref, b.tally_key))
            # Every balance difference is explained by the breaks on its row.
            assert not [r for r in out.result.balances if r.unexplained], report.name
        return found, refused
    finally:
        for s in (store, quarantine, audit, log):
            s.close()


def view_of(seed: int, minutes: int = MINUTES) -> ProviderView:
    world = build_world(seed, START, players=60)
    plays = generate(world, minutes=minutes, rounds_per_minute=RATE)
    return provider_view(world, plays, ReportFaults.all_on(), random.Random(seed))


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed={s}" for s in SEEDS])
def test_every_injected_break_is_found_and_classified_and_nothing_else(
    seed: int, tmp_path: Path
) -> None:
    view = view_of(seed)
    expected: set[Expected] = set()
    for label in view.labels:
        expected |= expected_breaks(label)
    found, refused = reconcile(view, tmp_path)

    table = scores(expected, found)
    print(f"\nseed {seed}: {len(view.events)} events, {len(view.labels)} labels")
    for s in table:
        print(
            f"  {s.kind:22} expected {s.expected:4} found {s.found:4} "
            f"precision {s.precision:.4f} recall {s.recall:.4f}"
        )
    assert refused == []
    # Every fault kind was injected, in both formats and several zones.
    assert set(Counter(label.fault for label in view.labels)) == set(Fault)
    assert {r.name.rsplit(".", 1)[1] for r in view.reports} == {"csv", "jsonl"}
    assert all(s.precision >= FLOOR and s.recall >= FLOOR for s in table), table
    assert found - expected == set(), "reported but not injected"
    assert expected - found == set(), "injected but not reported as labelled"


def test_without_faults_the_providers_reports_reconcile_without_a_break(tmp_path: Path) -> None:
    world = build_world(SEEDS[0], START, players=30)
    plays = generate(world, minutes=MINUTES, rounds_per_minute=RATE / 2)
    view = provider_view(world, plays, ReportFaults(), random.Random(SEEDS[0]))
    assert view.labels == []
    found, refused = reconcile(view, tmp_path)
    assert (found, refused) == (set(), [])


def test_the_provider_side_view_is_the_same_for_the_same_seed() -> None:
    a, b = view_of(5, 3 * 24 * 60), view_of(5, 3 * 24 * 60)
    assert [r.data for r in a.reports] == [r.data for r in b.reports]
    assert a.labels == b.labels and a.events == b.events
