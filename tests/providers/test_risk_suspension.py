"""A playbook suspends a game at the wallet gateway, end to end: an alert fires the
playbook, the switch is set, each protocol's next bet on that game gets the protocol's
own "game disabled" answer with nothing taken, and one-click undo lets the same bet in."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tally.adapters.memory.backoffice import MemoryBackofficeStore
from tally.adapters.memory.risk import MemoryAlertStore
from tally.audit.chain import Sealer
from tally.audit.service import Auditing
from tally.kernel.alerts import AlertSignal, Severity
from tally.kernel.clock import FixedClock
from tally.providers.base import Inbound
from tally.risk.alerts import AlertService
from tally.risk.playbooks import Playbooks, RiskSwitches
from tally.risk.ports import ActionStatus
from tests.providers.signing import SIGNERS
from tests.support.providers import gateway_world

RECORDED = Path(__file__).parent / "recorded"
T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

# protocol -> (the recorded exchange that is a bet, the field and value of the protocol's
# own "game disabled" answer, its HTTP status)
CASES = {
    "evolution": (2, "status", "FINAL_ERROR_ACTION_FAILED", 200),
    "hub88": (2, "status", "RS_ERROR_INVALID_GAME", 200),
    "pragmatic": (2, "error", 8, 200),
    "softswiss": (1, "code", 107, 412),
}


def risk(suspend: str) -> tuple[AlertService, Playbooks, RiskSwitches, MemoryBackofficeStore]:
    trail = MemoryBackofficeStore(Sealer(b"k" * 32))
    store = MemoryAlertStore()
    clock = FixedClock(T)
    playbooks = Playbooks(store, trail, clock)
    service = AlertService(store, trail, clock, on_actionable=playbooks.fire)
    service.save_rules(
        {
            "playbooks": [
                {
                    "name": "suspend-drifting-game",
                    "action": suspend,
                    "match": {"kind": "risk.rtp_drift"},
                    "mode": "live",
                }
            ]
        },
        Auditing(trail, "user:admin"),
    )
    return service, playbooks, RiskSwitches(store, ttl_s=0.0), trail


@pytest.mark.parametrize("protocol", sorted(CASES))
@pytest.mark.parametrize("suspend", ["suspend_game", "suspend_provider"])
def test_a_suspended_game_gets_the_protocols_own_refusal_and_undo_lets_it_play(
    protocol: str, suspend: str, tmp_path: Path
) -> None:
    index, field, refused, status = CASES[protocol]
    recording = json.loads((RECORDED / f"{protocol}.json").read_text())
    clock = FixedClock(T)
    secrets = {(protocol, k): v for k, v in recording["secrets"].items()}
    service, playbooks, switches, trail = risk(suspend)
    with gateway_world(tmp_path, clock, secrets, [protocol]) as world:
        world.gateway.suspended = switches.suspended
        player = recording["player"]
        world.open_player(player["id"], player["currency"], player["deposit"])
        token = world.session(protocol, player["id"], player["currency"])
        exchange: dict[str, Any] = dict(recording["exchanges"][index])
        exchange["body"] = exchange["body"].replace("{session}", token)
        body, headers, query = SIGNERS[protocol](exchange, recording["secrets"])
        lowered = {k.lower(): v for k, v in headers.items()}
        inbound = Inbound(exchange["action"], body, T, headers=lowered, query=query)
        game = world.gateway.registry.get(protocol).parse(inbound).game  # type: ignore[union-attr]
        assert game

        service.signal(
            AlertSignal(
                "risk.rtp_drift", f"{protocol}/{game}", Severity.CRITICAL,
                "RTP far outside its band", T, provider=protocol, game=game, region="eu",
                money_at_risk=50_000, currency="EUR",
            )
        )  # fmt: skip
        (act,) = playbooks.store.actions()
        assert act.status is ActionStatus.DONE
        assert switches.suspended(protocol, game)
        assert not switches.suspended("someone-else", game)

        before = world.balance(player["id"])
        events = len(world.events())
        reply = world.call(protocol, exchange["action"], body, headers, query)
        answer = json.loads(reply.body)
        assert reply.status == status, answer
        assert answer[field] == refused, answer
        assert world.balance(player["id"]) == before
        assert len(world.events()) == events
        assert world.kept() == []  # a business answer, not a defective input

        undone = playbooks.undo(act.id, Auditing(trail, "user:risk1"))
        assert undone.status is ActionStatus.UNDONE
        assert not switches.suspended(protocol, game)
        reply = world.call(protocol, exchange["action"], body, headers, query)
        assert reply.status == exchange["status"], json.loads(reply.body)
        # Played this time (softswiss' recorded request is a bet and its win together).
        assert world.balance(player["id"]) != before
        assert len(world.events()) > events
    audited = [r.entry.action for r in trail.iter_audit()]
    assert audited == ["alert_rules.saved", "alert.opened", "playbook.done", "playbook.undone"]
    done = list(trail.iter_audit())[2].entry
    assert done.after is not None and done.after["alert"] == 1  # the alert that caused it


def test_wins_and_rollbacks_of_accepted_play_pass_while_suspended(tmp_path: Path) -> None:
    recording = json.loads((RECORDED / "softswiss.json").read_text())
    clock = FixedClock(T)
    secrets = {("softswiss", k): v for k, v in recording["secrets"].items()}
    service, _, switches, _ = risk("suspend_provider")
    with gateway_world(tmp_path, clock, secrets, ["softswiss"]) as world:
        world.gateway.suspended = switches.suspended
        player = recording["player"]
        world.open_player(player["id"], player["currency"], player["deposit"])
        by_name = {e["name"]: e for e in recording["exchanges"]}
        bet = next(e for e in recording["exchanges"] if e["name"].startswith("a bet whose"))
        rollback = next(e for e in recording["exchanges"] if e["name"].startswith("rollback of"))
        assert by_name
        body, headers, query = SIGNERS["softswiss"](bet, recording["secrets"])
        assert world.call("softswiss", "play", body, headers, query).status == 200
        after_bet = world.balance(player["id"])
        service.signal(
            AlertSignal(
                "risk.rtp_drift", "softswiss/x", Severity.CRITICAL, "drift", T,
                provider="softswiss", game="x",
            )
        )  # fmt: skip
        assert switches.suspended("softswiss", "anything")
        body, headers, query = SIGNERS["softswiss"](rollback, recording["secrets"])
        reply = world.call("softswiss", "rollback", body, headers, query)
        assert reply.status == 200, reply.body
        assert world.balance(player["id"]) == after_bet + 300
