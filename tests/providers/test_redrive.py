"""Refused callbacks are kept, and re-driven through the gateway after a fix."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tally.adapters.memory.backoffice import MemoryBackofficeStore
from tally.audit.chain import Sealer
from tally.kernel.clock import FixedClock
from tally.providers.softswiss.client import SoftSwissClient
from tally.quarantine.inputs import Reason, Status
from tally.quarantine.ledger import QuarantineError
from tally.quarantine.redrive import QuarantineDesk
from tests.support.providers import GatewayWorld, gateway_world

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def desk_for(world: GatewayWorld) -> tuple[QuarantineDesk, MemoryBackofficeStore]:
    audit = MemoryBackofficeStore(Sealer(b"k" * 32))
    desk = QuarantineDesk(world.quarantine, audit, world.clock)
    desk.register("callback", world.gateway.redrive)
    return desk, audit


def send(world: GatewayWorld, token: str, request_body: tuple[str, str, int]) -> int:
    kind, tx, amount = request_body
    request = SoftSwissClient(token).play("p1", "EUR", "g", "r1", [(kind, tx, amount)])
    return world.call("softswiss", request.action, request.body, request.headers).status


def test_a_callback_that_failed_its_signature_is_not_redriven_since_its_signature_is_not_kept(
    tmp_path: Path,
) -> None:
    secrets = {("softswiss", "auth_token"): "new-token"}
    with gateway_world(tmp_path, FixedClock(T0), secrets, ["softswiss"]) as world:
        world.open_player("p1", "EUR", 1_000)
        desk, audit = desk_for(world)
        assert send(world, "old-token", ("win", "w1", 250)) == 403
        (entry,) = world.quarantine.entries().items
        assert entry.refused.reason is Reason.BAD_SIGNATURE
        assert entry.refused.headers["x-request-sign"] == "[redacted]"

        # Even with the secret brought in line, the kept copy cannot prove it is authentic.
        world.secrets[("softswiss", "auth_token")] = "old-token"
        again = desk.redrive(entry.id, actor="ann")
        assert not again.accepted and "not_authentic" in again.detail
        assert world.quarantine.get(entry.id).status is Status.OPEN  # type: ignore[union-attr]
        assert len(world.quarantine.entries().items) == 1  # no second entry
        assert world.balance("p1") == 1_000
        # The provider's own retry, signed again, is what gets through.
        assert send(world, "old-token", ("win", "w1", 250)) == 200
        assert world.balance("p1") == 1_250
        assert [r.entry.action for r in audit.iter_audit()] == ["input_quarantine.redriven"]


def test_an_evolution_callback_is_kept_without_its_auth_token(tmp_path: Path) -> None:
    secrets = {("evolution", "auth_token"): "EVO-SECRET-TOKEN"}
    with gateway_world(tmp_path, FixedClock(T0), secrets, ["evolution"]) as world:
        body = b'{"uuid": "u1", "userId": "nobody", "sid": "s1", "currency": "EUR"}'
        # Authentic but not JSON, and well-formed but with a wrong token: both kept.
        world.call("evolution", "balance", b"{not json", query={"authToken": "EVO-SECRET-TOKEN"})
        world.call("evolution", "balance", body, query={"authToken": "WRONG-BUT-SECRET"})
        kept = world.quarantine.entries().items
        assert len(kept) == 2
        for entry in kept:
            assert "SECRET" not in repr(entry)
            assert entry.refused.headers["x-tally-query"] == '{"authToken": "[redacted]"}'
        assert [e.refused.headers["x-tally-authentic"] for e in kept] == ["yes", "no"]


def test_a_win_for_an_unknown_player_is_applied_once_the_wallet_exists(tmp_path: Path) -> None:
    secrets = {("softswiss", "auth_token"): "t"}
    with gateway_world(tmp_path, FixedClock(T0), secrets, ["softswiss"]) as world:
        desk, _ = desk_for(world)
        assert send(world, "t", ("win", "w1", 400)) == 412
        (entry,) = world.quarantine.entries().items
        assert entry.refused.reason is Reason.UNKNOWN_PLAYER
        world.open_player("p1", "EUR", 0)
        assert desk.redrive(entry.id, actor="ann").accepted
        assert world.balance("p1") == 400
        assert [e.key for e in world.events()] == ["softswiss:w1:win"]
        # Re-driving is idempotent with the provider's own retry.
        assert send(world, "t", ("win", "w1", 400)) == 200
        assert world.balance("p1") == 400


def test_a_dismissal_needs_a_note_and_closes_the_entry(tmp_path: Path) -> None:
    with gateway_world(tmp_path, FixedClock(T0), {}, ["softswiss"]) as world:
        desk, audit = desk_for(world)
        world.call("softswiss", "play", b"not json")
        (entry,) = world.quarantine.entries().items
        with pytest.raises(QuarantineError):
            desk.dismiss(entry.id, actor="ann", note=" ")
        desk.dismiss(entry.id, actor="ann", note="test traffic from the provider's sandbox")
        assert world.quarantine.entries(status=Status.OPEN).items == []
        assert [r.entry.action for r in audit.iter_audit()] == ["input_quarantine.dismissed"]
