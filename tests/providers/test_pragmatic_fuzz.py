"""Pragmatic Play: any bytes are answered in the protocol and move money only when valid."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.kernel.clock import FixedClock
from tests.providers.signing import pragmatic
from tests.support.providers import gateway_world

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SECRET = "pp-secret"


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    action=st.sampled_from(["bet.html", "result.html", "refund.html", "balance.html", "x.html"]),
    form=st.one_of(
        st.text(max_size=200),
        st.dictionaries(
            st.sampled_from(["userId", "amount", "reference", "roundId", "timestamp", "token"]),
            st.text(max_size=30),
        ).map(lambda d: "providerId=PragmaticPlay&" + "&".join(f"{k}={v}" for k, v in d.items())),
    ),
    signed=st.booleans(),
)
def test_any_form_is_answered_in_the_protocol_and_moves_money_only_when_valid(
    tmp_path_factory: object, action: str, form: str, signed: bool
) -> None:
    secrets = {("pragmatic", "secret_key"): SECRET}
    path = tmp_path_factory.mktemp("fuzz")  # type: ignore[attr-defined]
    with gateway_world(path, FixedClock(T0), secrets, ["pragmatic"]) as world:
        world.open_player("p1", "EUR", 10_000)
        if signed:
            body, headers, _ = pragmatic({"body": form}, {"secret_key": SECRET})
        else:
            body, headers = form.encode(), {}
        reply = world.call("pragmatic", action, body, headers)

        answer = json.loads(reply.body)
        assert reply.status == 200 and isinstance(answer["error"], int)
        if answer["error"] != 0 or not signed:
            assert world.balance("p1") == 10_000
            assert world.events() == []


VALID_BET = {
    "providerId": "PragmaticPlay",
    "userId": "p1",
    "gameId": "vs20",
    "roundId": "R1",
    "amount": "10.00",
    "reference": "B1",
    "timestamp": "1772452800000",
}


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(sorted(VALID_BET)),
    value=st.one_of(st.none(), st.text(max_size=30)),
    resign=st.booleans(),
)
def test_a_mutated_valid_bet_moves_money_only_when_signed_and_still_valid(
    tmp_path_factory: object, field: str, value: str | None, resign: bool
) -> None:
    secrets = {("pragmatic", "secret_key"): SECRET}
    path = tmp_path_factory.mktemp("mutate")  # type: ignore[attr-defined]
    with gateway_world(path, FixedClock(T0), secrets, ["pragmatic"]) as world:
        world.open_player("p1", "EUR", 10_000)
        original = "&".join(f"{k}={v}" for k, v in VALID_BET.items())
        signed_original, headers, _ = pragmatic({"body": original}, {"secret_key": SECRET})
        mutated = {k: v for k, v in VALID_BET.items() if k != field}
        if value is not None:
            mutated[field] = value
        form = "&".join(f"{k}={v}" for k, v in mutated.items())
        if resign:
            body, headers, _ = pragmatic({"body": form}, {"secret_key": SECRET})
        else:
            # The old hash on new content: a tampered request.
            old_hash = signed_original.decode().rsplit("hash=", 1)[-1]
            body = f"{form}&hash={old_hash}".encode()
        reply = world.call("pragmatic", "bet.html", body, headers)

        answer = json.loads(reply.body)
        assert reply.status == 200 and isinstance(answer["error"], int)
        if mutated != VALID_BET and not resign:
            assert answer["error"] != 0
        if answer["error"] != 0:
            assert world.balance("p1") == 10_000
            assert world.events() == []
