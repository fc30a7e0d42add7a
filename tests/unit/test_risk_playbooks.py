"""Playbooks: dry-run changes nothing, undo restores the exact prior state, the rate limit
and the approval hold, an alert that does not name its target is refused (never
widened), and a muted alert fires nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tally.adapters.memory.backoffice import MemoryBackofficeStore
from tally.adapters.memory.risk import MemoryAlertStore
from tally.audit.chain import Sealer
from tally.audit.service import Auditing
from tally.kernel.alerts import AlertSignal, Severity
from tally.kernel.clock import FixedClock
from tally.risk.alerts import AlertService
from tally.risk.alerts_model import Matcher
from tally.risk.playbooks import PlaybookRefused, Playbooks, RiskSwitches
from tally.risk.ports import ActionStatus, AlertFilter, AlertStore, SwitchKind

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class World:
    def __init__(self, playbooks: list[dict[str, Any]], store: AlertStore | None = None) -> None:
        self.trail = MemoryBackofficeStore(Sealer(b"k" * 32))
        self.store = store or MemoryAlertStore()
        self.clock = FixedClock(T)
        self.playbooks = Playbooks(self.store, self.trail, self.clock)
        self.alerts = AlertService(
            self.store, self.trail, self.clock, on_actionable=self.playbooks.fire
        )
        self.alerts.save_rules({"playbooks": playbooks}, Auditing(self.trail, "user:admin"))
        self.switches = RiskSwitches(self.store, ttl_s=0.0)
        self.person = Auditing(self.trail, "user:risk1", "10.0.0.9")

    def drift(self, game: str = "g1", provider: str = "acme", **kw: Any) -> None:
        self.alerts.signal(
            AlertSignal(
                kw.pop("kind", "risk.rtp_drift"), kw.pop("key", f"{provider}/{game}"),
                kw.pop("severity", Severity.CRITICAL), "RTP drift", self.clock.now(),
                provider=provider, game=game, region="eu", money_at_risk=1000, **kw,
            )
        )  # fmt: skip

    def state(self) -> tuple[object, ...]:
        """Everything a playbook could change: the switches, as they stand."""
        return tuple(self.store.switches(on_only=False))

    def audited(self) -> list[str]:
        return [r.entry.action for r in self.trail.iter_audit()]


def rule(action: str = "suspend_game", **kw: Any) -> dict[str, Any]:
    return {"name": "p1", "action": action, "match": {"kind": "risk.rtp_drift"}, **kw}


def test_a_dry_run_records_what_it_would_do_and_changes_nothing() -> None:
    w = World([rule(mode="dry_run")])
    before = w.state()
    w.drift()
    (a,) = w.store.actions()
    assert a.status is ActionStatus.DRY_RUN and a.detail == "would suspend_game acme/g1 for alert 1"
    assert w.state() == before
    assert not w.switches.suspended("acme", "g1")
    assert w.audited()[-1] == "playbook.dry_run"
    with pytest.raises(PlaybookRefused, match="dry_run, not done"):
        w.playbooks.undo(a.id, w.person)


@pytest.mark.parametrize(
    ("action", "switch", "target", "key"),
    [
        ("hold_settlement", SwitchKind.SETTLEMENT_HOLD, "acme", "acme/g1"),
        ("suspend_game", SwitchKind.GAME_SUSPENDED, "acme/g1", "acme/g1"),
        ("suspend_provider", SwitchKind.PROVIDER_SUSPENDED, "acme", "acme/g1"),
        ("freeze_commissions", SwitchKind.COMMISSIONS_FROZEN, "agent-7", "partner:agent-7"),
        ("withdrawal_approval", SwitchKind.WITHDRAWAL_APPROVAL, "p-42", "player:p-42"),
    ],
)
def test_each_action_sets_its_one_switch_and_undo_restores_the_exact_prior_state(
    action: str, switch: SwitchKind, target: str, key: str
) -> None:
    w = World([rule(action, mode="live", rate_max=5)])
    before = w.state()
    w.drift(key=key)
    (a,) = w.store.actions()
    assert (a.status, a.switch, a.target) == (ActionStatus.DONE, switch, target)
    assert [(s.kind, s.target) for s in w.store.switches()] == [(switch, target)]
    readers = {
        SwitchKind.SETTLEMENT_HOLD: lambda: bool(w.switches.held("acme")),
        SwitchKind.GAME_SUSPENDED: lambda: w.switches.suspended("acme", "g1"),
        SwitchKind.PROVIDER_SUSPENDED: lambda: w.switches.suspended("acme", "other-game"),
        SwitchKind.COMMISSIONS_FROZEN: lambda: w.switches.frozen("agent-7"),
        SwitchKind.WITHDRAWAL_APPROVAL: lambda: w.switches.second_approval_required("p-42"),
    }
    assert readers[switch]()
    w.playbooks.undo(a.id, w.person)
    assert w.state() == before
    assert not readers[switch]()
    last = list(w.trail.iter_audit())[-1].entry
    assert (last.action, last.actor) == ("playbook.undone", "user:risk1")
    assert last.after is not None and last.after["alert"] == 1


def test_undo_puts_back_an_earlier_actions_switch_not_a_blank_one() -> None:
    w = World([rule(mode="live", rate_max=5)])
    w.drift()
    w.clock.advance(timedelta(seconds=1))
    w.drift(key="acme/g1-again")  # another alert, the same game
    first, second = w.store.actions()
    now = w.store.switch(SwitchKind.GAME_SUSPENDED, "acme/g1")
    assert now.by_action == second.id and second.prior["by_action"] == first.id
    w.playbooks.undo(second.id, w.person)
    restored = w.store.switch(SwitchKind.GAME_SUSPENDED, "acme/g1")
    assert restored.on and restored.by_action == first.id and restored.at == T
    w.playbooks.undo(first.id, w.person)
    assert w.store.switches(on_only=False) == []


def test_the_rate_limit_counts_a_playbooks_actions_in_its_window() -> None:
    w = World([rule(mode="live", rate_max=2, rate_window_s=600)])
    for game in ("g1", "g2", "g3"):
        w.drift(game)
    statuses = [a.status for a in w.store.actions()]
    assert statuses == [ActionStatus.DONE, ActionStatus.DONE, ActionStatus.RATE_LIMITED]
    assert not w.switches.suspended("acme", "g3")
    w.clock.advance(timedelta(seconds=601))
    w.drift("g4")
    assert w.store.actions()[-1].status is ActionStatus.DONE


def test_an_approval_holds_the_action_until_a_person_approves_or_rejects_it() -> None:
    w = World([rule(mode="live", approval=True, rate_max=5)])
    w.drift("g1")
    w.drift("g2")
    first, second = w.store.actions()
    assert first.status is ActionStatus.AWAITING_APPROVAL
    assert not w.switches.suspended("acme", "g1")
    approved = w.playbooks.approve(first.id, w.person)
    assert approved.approved_by == "user:risk1" and w.switches.suspended("acme", "g1")
    w.playbooks.reject(second.id, w.person)
    assert not w.switches.suspended("acme", "g2")
    with pytest.raises(PlaybookRefused, match="not awaiting_approval"):
        w.playbooks.approve(second.id, w.person)
    assert w.audited()[-2:] == ["playbook.done", "playbook.rejected"]


def test_an_alert_that_does_not_name_the_target_is_refused_never_widened() -> None:
    w = World([rule("suspend_game", mode="live")])
    w.drift(game="", key="acme")  # an RTP alert about a whole provider: no game
    (a,) = w.store.actions()
    assert a.status is ActionStatus.REFUSED and "does not name its provider, game" in a.detail
    assert w.store.switches(on_only=False) == []


def test_a_warning_or_a_muted_alert_fires_no_playbook() -> None:
    w = World([rule(mode="live", rate_max=5)])
    w.drift(severity=Severity.WARNING)
    assert w.store.actions() == []
    w.alerts.silence([Matcher("game", "g2")], "recertification", T + timedelta(hours=1), w.person)
    w.drift("g2")
    assert w.store.actions() == []
    assert len(w.store.alerts(AlertFilter())) == 2  # both kept all the same


def test_undo_and_dry_run_hold_on_sqlite_too(tmp_path: Path) -> None:
    from tally.adapters.sqlite.risk import SqliteAlertStore

    store = SqliteAlertStore(tmp_path / "t.sqlite")
    w = World([rule(mode="live", rate_max=5)], store)
    before = w.state()
    w.drift()
    (a,) = w.store.actions()
    w.playbooks.undo(a.id, w.person)
    assert w.state() == before
    store.close()
