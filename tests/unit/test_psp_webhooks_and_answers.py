"""The PSP rail's pure parts: the webhook verifier, and what each HTTP answer means."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tally.adapters.payouts.psp import PspRail, answer_of
from tally.adapters.payouts.webhooks import WebhookRefused, read_webhook
from tally.kernel.limits import RailLimits
from tally.payouts.rails import PayoutInstruction, RailAnswer, RailOutcome
from tally.simulation.psp import sign

C, R, S, U = RailOutcome.CONFIRMED, RailOutcome.REJECTED, RailOutcome.SUBMITTED, RailOutcome.UNKNOWN
SECRET = "whsec-unit"
NOW = datetime(2026, 12, 8, 0, 0, tzinfo=UTC)
STAMP = int(NOW.timestamp())


def event(kind: str = "payout.paid", **data: object) -> bytes:
    payout = {"id": "po_1", "status": kind.split(".")[1], "metadata": {"payout_id": "payout-9"}}
    payout.update(data)
    return json.dumps({"id": "evt_1", "type": kind, "created": STAMP, "data": payout}).encode()


def signed(body: bytes, stamp: int = STAMP, secret: str = SECRET) -> dict[str, str]:
    return {"psp-timestamp": str(stamp), "psp-signature": sign(secret, stamp, body)}


def test_a_signed_paid_event_confirms_its_payout() -> None:
    body = event()
    assert read_webhook(signed(body), body, SECRET, NOW) == RailAnswer("payout-9", C, "po_1")


def test_a_failed_event_rejects_with_the_psps_failure_code() -> None:
    body = event("payout.failed", failure_code="account_closed")
    assert read_webhook(signed(body), body, SECRET, NOW) == RailAnswer(
        "payout-9", R, "po_1", "account_closed"
    )


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        pytest.param(signed(event()), event("payout.failed"), "forged", id="body-changed"),
        pytest.param(signed(event(), secret="other"), event(), "forged", id="wrong-secret"),
        pytest.param({"psp-timestamp": str(STAMP)}, event(), "forged", id="no-signature"),
        pytest.param({"psp-signature": "0" * 64}, event(), "forged", id="no-timestamp"),
        pytest.param(
            {"psp-timestamp": str(STAMP + 60), "psp-signature": signed(event())["psp-signature"]},
            event(),
            "forged",
            id="timestamp-changed",
        ),
        pytest.param(signed(event(), STAMP - 301), event(), "stale", id="older-than-window"),
        pytest.param(signed(event(), STAMP + 301), event(), "forged", id="from-the-future"),
    ],
)
def test_forged_and_stale_webhooks_are_refused(
    headers: dict[str, str], body: bytes, code: str
) -> None:
    with pytest.raises(WebhookRefused) as refused:
        read_webhook(headers, body, SECRET, NOW)
    assert refused.value.code == code


def test_a_webhook_just_inside_the_window_is_taken() -> None:
    body = event()
    assert read_webhook(signed(body, STAMP - 300), body, SECRET, NOW).outcome is C


def test_an_oversized_body_is_refused_before_its_signature_is_computed() -> None:
    limits = RailLimits(webhook_body_max_bytes=100)
    body = event(note="x" * 200)
    with pytest.raises(WebhookRefused) as refused:
        read_webhook(signed(body), body, SECRET, NOW, limits)
    assert refused.value.code == "too_large"


def test_no_secret_configured_trusts_nothing() -> None:
    body = event()
    with pytest.raises(WebhookRefused, match="no webhook secret"):
        read_webhook(signed(body, secret=""), body, "", NOW)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"type": "payout.paid"}).encode(),
        json.dumps({"type": "payout.exploded", "data": {"metadata": {"payout_id": "p"}}}).encode(),
        json.dumps({"type": "payout.paid", "data": {"id": "po_1"}}).encode(),
        b'{"type": "payout.paid", "data": ' + b"[" * 100 + b"]" * 100 + b"}",
    ],
    ids=["not-json", "not-object", "no-data", "unknown-type", "no-payout-id", "too-deep"],
)
def test_a_signed_but_malformed_event_is_refused(body: bytes) -> None:
    with pytest.raises(WebhookRefused) as refused:
        read_webhook(signed(body), body, SECRET, NOW)
    assert refused.value.code == "malformed"


# -- what an HTTP answer means ----------------------------------------------------------


def _answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (201, {"id": "po_1", "status": "pending"}, S),
        (200, {"id": "po_1", "status": "paid"}, C),
        (200, {"id": "po_1", "status": "failed", "failure_code": "no_account"}, R),
        (200, {"id": "po_1", "status": "exploded"}, U),
        (400, {"error": {"code": "invalid_request"}}, R),
        (422, {"error": {"code": "destination_blocked"}}, R),
        (422, {"error": {"code": "idempotency_key_reused"}}, U),
        (401, {"error": {"code": "unauthorised"}}, U),
        (409, {"error": {"code": "conflict"}}, U),
        (429, {"error": {"code": "rate_limited"}}, U),
        (500, {"error": {"code": "internal_error"}}, U),
        (502, "bad gateway", U),
        (503, {"error": {"code": "unavailable"}}, U),
    ],
)
def test_each_http_answer_means_one_outcome(
    status: int, body: object, outcome: RailOutcome
) -> None:
    assert answer_of("p-1", _answer(status, body)).outcome is outcome


def _instruction() -> PayoutInstruction:
    return PayoutInstruction("p-1", "k-1", "r", "c", "n", "payee", "", 100, "EUR", "ref")


@pytest.mark.parametrize(
    "error",
    [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.RemoteProtocolError("cut")],
)
def test_no_answer_at_all_is_unknown_never_rejected(error: Exception) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    rail = PspRail("http://psp.invalid", transport=httpx.MockTransport(fail))
    assert rail.submit([_instruction()])[0].outcome is U
    assert rail.status(_instruction()).outcome is U


def test_the_request_carries_the_key_and_exact_minor_units() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "po_1", "status": "pending"})

    rail = PspRail("http://psp.invalid", transport=httpx.MockTransport(record), api_key="sk")
    assert rail.submit([_instruction()]) == [RailAnswer("p-1", S, "po_1")]
    (request,) = seen
    assert request.headers["idempotency-key"] == "k-1"
    assert request.headers["authorization"] == "Bearer sk"
    body = json.loads(request.content)
    assert body["amount"] == 100 and body["metadata"]["payout_id"] == "p-1"


def test_a_currency_the_rail_does_not_pay_is_rejected_without_a_request() -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request must be sent")

    rail = PspRail("http://psp.invalid", transport=httpx.MockTransport(never), currencies=["GBP"])
    (answer,) = rail.submit([_instruction()])
    assert answer.outcome is R and "does not pay in EUR" in answer.reason


def test_stale_by_the_clock_is_counted_in_whole_seconds() -> None:
    body = event()
    later = NOW + timedelta(seconds=300, milliseconds=900)
    assert read_webhook(signed(body), body, SECRET, later).outcome is C
