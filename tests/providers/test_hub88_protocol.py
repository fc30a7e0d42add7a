"""Hub88: signed answers, any order and repetition of a round, and any bytes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.kernel.clock import FixedClock
from tests.providers.signing import hub88
from tests.support.providers import GatewayWorld, gateway_world

RECORDING = json.loads((Path(__file__).parent / "recorded" / "hub88.json").read_text())
KEYS: dict[str, str] = RECORDING["secrets"]
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def world(tmp_path: Path) -> Any:
    secrets = {("hub88", k): v for k, v in KEYS.items()}
    return gateway_world(tmp_path, FixedClock(T0), secrets, ["hub88"])


def send(w: GatewayWorld, action: str, body: dict[str, Any]) -> dict[str, Any]:
    raw, headers, _ = hub88({"body": json.dumps(body)}, KEYS)
    reply = w.call("hub88", action, raw, headers)
    # Every answer is signed with the operator's key; Hub88 checks it with our public key.
    public = serialization.load_pem_public_key(KEYS["operator_public_key"].encode())
    assert isinstance(public, rsa.RSAPublicKey)
    signature = base64.b64decode(reply.headers["X-Hub88-Signature"])
    public.verify(signature, reply.body, padding.PKCS1v15(), hashes.SHA256())
    answer: dict[str, Any] = json.loads(reply.body)
    return answer


def tx(tid: str, amount: int = 0, **kw: Any) -> dict[str, Any]:
    body = {
        "user": "p1",
        "transaction_uuid": tid,
        "request_uuid": f"req-{tid}",
        "round": "rnd-1",
        "game_code": "g",
        "currency": "EUR",
        "amount": amount,
        "token": "",
    }
    return body | kw


ROUND = [
    ("transaction/win", tx("w1", 700_000, reference_transaction_uuid="b1")),
    ("transaction/rollback", tx("rb2", reference_transaction_uuid="b2")),
    ("transaction/win", tx("w3", 0, reference_transaction_uuid="b1", round_closed=True)),
]
BETS = [("transaction/bet", tx("b1", 1_000_000)), ("transaction/bet", tx("b2", 500_000))]


def play(path: Path, order: list[int]) -> tuple[int, set[str]]:
    with world(path) as w:
        w.open_player("p1", "EUR", 10_000)
        token = w.session("hub88", "p1", "EUR")
        calls = [(a, b | {"token": token}) for a, b in BETS + ROUND]
        for i in order:
            send(w, *calls[i])
        # A win that came before its bet was refused (the bet did not exist yet) and moved
        # nothing; Hub88 sends it again, as it does every call not answered RS_OK.
        for call in calls:
            send(w, *call)
        return w.balance("p1"), {e.key for e in w.events()}


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.permutations(range(len(BETS) + len(ROUND))),
    repeats=st.lists(st.integers(min_value=1, max_value=3), min_size=5, max_size=5),
)
def test_any_order_and_any_repetition_of_a_round_ends_the_same(
    tmp_path_factory: Any, order: list[int], repeats: list[int]
) -> None:
    want = play(tmp_path_factory.mktemp("in-order"), list(range(5)))
    assert want[0] == 10_000 - 1_000 + 700  # bet b2 rolled back, w3 = 0 closes the round
    got = play(tmp_path_factory.mktemp("shuffled"), [i for i in order for _ in range(repeats[i])])
    assert got == want


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    action=st.sampled_from(["transaction/bet", "transaction/win", "user/balance", "nope"]),
    body=st.one_of(
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
        st.dictionaries(
            st.sampled_from(["user", "amount", "currency", "transaction_uuid", "token"]),
            st.one_of(st.text(max_size=20), st.integers(), st.none(), st.booleans()),
        ).map(json.dumps),
    ),
)
def test_any_body_is_answered_in_the_protocol_and_moves_nothing_unless_valid(
    tmp_path_factory: Any, action: str, body: str
) -> None:
    with world(tmp_path_factory.mktemp("fuzz")) as w:
        w.open_player("p1", "EUR", 10_000)
        raw, headers, _ = hub88({"body": body}, KEYS)
        reply = w.call("hub88", action, raw, headers)
        answer = json.loads(reply.body)
        assert reply.status == 200 and answer["status"].startswith("RS_")
        if answer["status"] != "RS_OK":
            assert w.balance("p1") == 10_000
            assert w.events() == []
