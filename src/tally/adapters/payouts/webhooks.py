"""The PSP's webhooks, verified and read: pure (ADR 0022).

A webhook is trusted only when its ``Psp-Signature`` is the HMAC-SHA256, under the
shared secret, of its ``Psp-Timestamp``, a dot and the raw body, and the timestamp is
within the tolerance of our clock (older is a replay, newer a forgery). The body's size
is checked before anything else. A verified ``payout.paid`` is CONFIRMED, ``payout.failed``
REJECTED with the PSP's failure code, ``payout.pending`` SUBMITTED; the payout is the one
named in the event's ``metadata.payout_id`` (Tally's own id, sent with the payout).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tally.kernel.limits import JSON_MAX_DEPTH, RailLimits, json_too_deep
from tally.payouts.rails import RailAnswer, RailOutcome

SIGNATURE_HEADER = "psp-signature"
TIMESTAMP_HEADER = "psp-timestamp"
_HEX_SHA256 = 64

OUTCOMES = {
    "payout.paid": RailOutcome.CONFIRMED,
    "payout.failed": RailOutcome.REJECTED,
    "payout.pending": RailOutcome.SUBMITTED,
}


class WebhookRefused(ValueError):
    """A webhook that is not taken: ``code`` says why (forged, stale, too_large,
    malformed) for the answer and the alert; nothing in it is applied."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: datetime,
    limits: RailLimits | None = None,
) -> None:
    """Refuse (:class:`WebhookRefused`) an oversized, unsigned, forged or stale webhook.
    ``headers`` keys in lower case (as ASGI servers give them)."""
    limits = limits or RailLimits()
    if len(body) > limits.webhook_body_max_bytes:
        raise WebhookRefused(
            "too_large", f"{len(body)} bytes is over {limits.webhook_body_max_bytes}"
        )
    if not secret:
        raise WebhookRefused("forged", "no webhook secret is configured: nothing is trusted")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "").strip().lower()
    if not stamp.isdigit() or len(stamp) > 12:
        raise WebhookRefused("forged", "no valid Psp-Timestamp header")
    if len(given) != _HEX_SHA256:
        raise WebhookRefused("forged", "no valid Psp-Signature header")
    if not hmac.compare_digest(given, expected_signature(secret, stamp, body)):
        raise WebhookRefused("forged", "Psp-Signature does not match the body and timestamp")
    skew = int(now.timestamp()) - int(stamp)
    if skew > limits.webhook_tolerance_s:
        raise WebhookRefused("stale", f"signed {skew} s ago, over {limits.webhook_tolerance_s} s")
    if -skew > limits.webhook_tolerance_s:
        raise WebhookRefused("forged", f"signed {-skew} s in the future")


def _field(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise WebhookRefused("malformed", f"{name} must be a string")
    return value


def answer_of(body: bytes) -> RailAnswer:
    """The rail answer a verified webhook body gives."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRefused("malformed", "the body is not UTF-8") from None
    if json_too_deep(text):
        raise WebhookRefused("malformed", f"the body nests deeper than {JSON_MAX_DEPTH}")
    try:
        event = json.loads(text)
    except ValueError:
        raise WebhookRefused("malformed", "the body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise WebhookRefused("malformed", "an event is an object with a data object")
    kind = _field(event, "type")
    outcome = OUTCOMES.get(kind)
    if outcome is None:
        raise WebhookRefused("malformed", f"unknown event type {kind!r}")
    data: Mapping[str, Any] = event["data"]
    metadata = data.get("metadata")
    payout_id = _field(metadata, "payout_id") if isinstance(metadata, dict) else ""
    if not payout_id:
        raise WebhookRefused("malformed", "the event names no payout (metadata.payout_id)")
    reason = ""
    if outcome is RailOutcome.REJECTED:
        reason = _field(data, "failure_code") or "failed"  # a refusal always says why
    return RailAnswer(payout_id, outcome, _field(data, "id"), reason)


def read_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: datetime,
    limits: RailLimits | None = None,
) -> RailAnswer:
    """Verify, then read: the one call a webhook receiver makes."""
    verify_webhook(headers, body, secret, now, limits)
    return answer_of(body)
