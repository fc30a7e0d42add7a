"""SoftSwiss Game Aggregator, Game Client Protocol v2: the casino's wallet endpoints.

What this adapter follows (the aggregator's public "casino side" protocol):

- ``POST /play``: ``{"user_id", "currency", "game", "game_id", "finished", "actions":
  [{"action": "bet"|"win", "amount": <int subunits>, "action_id", "jackpot_contribution"?}]}``.
  Without ``actions`` it is a balance request. Several actions in one request are
  processed in order, all or nothing.
- ``POST /rollback``: the same envelope with ``{"action": "rollback", "action_id",
  "original_action_id"}`` actions. A rollback of an action the casino never saw is
  answered with success (and remembered: if the action arrives later it is cancelled).
- ``POST /freespins``: ``{"issue_id", "status", "total_amount"}`` when a free-spins
  issue finishes; the total is paid out as a bonus win.
- Signature: header ``X-REQUEST-SIGN`` = HMAC-SHA256 of the raw body under the
  casino's auth token (secret ``auth_token``), hex (either case, as the protocol's
  examples) or Base64 (standard or URL-safe, padded or not, as some clients send it).
- Amounts: integers in the currency's subunits (cents for EUR, satoshi for BTC).
- Success: HTTP 200 ``{"balance": <int>, "game_id", "transactions": [{"action_id",
  "tx_id", "processed_at"}]}``. Errors: HTTP 412 ``{"code": 100, "message": "Player has
  not enough funds to process an action", "balance"}``; 412 code 101 "Player is
  invalid"; 412 code 107 "Game is forbidden to the player" (a game or provider
  suspended by a risk playbook); 403 code 403 "Forbidden. (Request sign doesn't
  match)"; a malformed request
  HTTP 400 code 400 "Bad request"; anything else HTTP 500 code 500 "Unknown error"
  (the aggregator retries those).

The aggregator retries a request it got no answer to with the same action ids; the
wallet's idempotency returns the first answer.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from typing import Any

import orjson

from tally.events.model import EventKind
from tally.kernel.currency import is_known
from tally.providers.base import Credentials, Inbound, Outbound, Refusal
from tally.quarantine.inputs import Reason
from tally.wallet.model import CallKind, WalletAnswer, WalletCall, WalletError, WalletOp

SIGN_HEADER = "x-request-sign"
_HEX_LENGTH = 64  # a SHA-256 digest in hex
_BASE64_LENGTHS = (43, 44)  # the same in Base64, unpadded and padded
ACTIONS_MAX = 20  # actions in one request; more is refused
AMOUNT_MAX = 10**15  # subunits; larger is refused as out of range
TEXT_MAX = 128  # an id or name longer than this is refused

_ERRORS: dict[WalletError | str, tuple[int, int, str]] = {
    WalletError.INSUFFICIENT_FUNDS: (
        412,
        100,
        "Player has not enough funds to process an action",
    ),
    WalletError.UNKNOWN_PLAYER: (412, 101, "Player is invalid"),
    WalletError.WRONG_CURRENCY: (412, 101, "Player is invalid"),
    WalletError.CONFLICT: (412, 500, "Unknown error: action id reused with other content"),
    WalletError.GAME_DISABLED: (412, 107, "Game is forbidden to the player"),
    Reason.BAD_SIGNATURE: (403, 403, "Forbidden. (Request sign doesn't match)"),
    Reason.FORBIDDEN: (403, 403, "Forbidden"),
    Reason.MALFORMED: (400, 400, "Bad request"),
    Reason.OUT_OF_RANGE: (400, 400, "Bad request"),
}
_UNKNOWN = (500, 500, "Unknown error")


def _bad(detail: str) -> Refusal:
    return Refusal(Reason.MALFORMED, detail)


def _text(data: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # SoftSwiss sends some ids as numbers
    if not isinstance(value, str) or (required and not value) or len(value) > TEXT_MAX:
        raise _bad(f"{name} must be a non-empty string of at most {TEXT_MAX} characters")
    return value


def _digest_of(sign: str) -> bytes:
    """The HMAC an ``X-REQUEST-SIGN`` carries. The protocol's examples send it hex; some
    aggregator clients send it Base64 (standard or URL-safe, padded or not). A SHA-256
    digest is 64 hex digits or 43-44 Base64 characters, so the two never overlap: the
    length says which. Anything else is no digest (and matches nothing)."""
    try:
        if len(sign) == _HEX_LENGTH:
            return bytes.fromhex(sign)
        if len(sign) in _BASE64_LENGTHS:
            padded = sign.replace("-", "+").replace("_", "/").ljust(_BASE64_LENGTHS[-1], "=")
            return base64.b64decode(padded, validate=True)
    except (ValueError, binascii.Error):
        pass
    return b""


def _amount(action: Mapping[str, Any]) -> int:
    value = action.get("amount")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad("amount must be an integer number of subunits")
    if value < 0 or value > AMOUNT_MAX:
        raise Refusal(Reason.OUT_OF_RANGE, f"amount {value} is out of range")
    return value


class SoftSwissAdapter:
    protocol = "SoftSwiss Game Aggregator GCP v2 (casino wallet: /play, /rollback, /freespins)"
    secret_names = ("auth_token",)

    def __init__(self, name: str = "softswiss") -> None:
        self.name = name

    # -- verify -----------------------------------------------------------------------------
    def verify(self, inbound: Inbound, credentials: Credentials) -> None:
        token = credentials.get("auth_token")
        if not token:
            raise Refusal(Reason.BAD_SIGNATURE, "no auth_token configured for this provider")
        given = _digest_of(inbound.headers.get(SIGN_HEADER, ""))
        expected = hmac.digest(token.encode(), inbound.body, "sha256")
        if not hmac.compare_digest(given, expected):
            raise Refusal(Reason.BAD_SIGNATURE, "X-REQUEST-SIGN does not match the body")

    # -- parse ------------------------------------------------------------------------------
    def parse(self, inbound: Inbound) -> WalletCall:
        action = inbound.action.strip("/")
        if action not in ("play", "rollback", "freespins"):
            raise _bad(f"unknown call {action!r}")
        try:
            data = json.loads(inbound.body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise _bad(f"body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise _bad("body must be a JSON object")
        if action == "freespins":
            return self._freespins(data)
        currency = _text(data, "currency")
        if not is_known(currency):
            raise Refusal(Reason.OUT_OF_RANGE, f"unknown currency {currency!r}")
        game_id = _text(data, "game_id", required=False)
        actions = data.get("actions")
        if actions is None:
            actions = []
        if not isinstance(actions, list) or len(actions) > ACTIONS_MAX:
            raise _bad(f"actions must be a list of at most {ACTIONS_MAX}")
        ops: list[WalletOp] = []
        for item in actions:
            if not isinstance(item, dict):
                raise _bad("each action must be an object")
            ops.append(self._op(action, item, game_id))
        finished = data.get("finished")
        if finished is not None and not isinstance(finished, bool):
            raise _bad("finished must be true or false")
        if finished and ops and action == "play":
            ops.append(WalletOp(EventKind.ROUND_END, f"{game_id}:end", 0, round_id=game_id))
        return WalletCall(
            kind=CallKind.TRANSACT if ops else CallKind.BALANCE,
            player=_text(data, "user_id"),
            currency=currency,
            game=_text(data, "game", required=False),
            ops=tuple(ops),
            echo={"game_id": game_id},
        )

    def _op(self, call: str, item: Mapping[str, Any], game_id: str) -> WalletOp:
        kind = item.get("action")
        action_id = _text(item, "action_id")
        if call == "rollback":
            if kind != "rollback":
                raise _bad("a /rollback request carries only rollback actions")
            return WalletOp(
                EventKind.ROLLBACK,
                action_id,
                0,
                round_id=game_id,
                ref_tx=_text(item, "original_action_id"),
                ref_kinds=(EventKind.BET, EventKind.WIN, EventKind.JACKPOT_WIN),
            )
        if kind == "bet":
            return WalletOp(EventKind.BET, action_id, _amount(item), round_id=game_id)
        if kind == "win":
            jackpot = item.get("jackpot_win") is True
            return WalletOp(
                EventKind.JACKPOT_WIN if jackpot else EventKind.WIN,
                action_id,
                _amount(item),
                round_id=game_id,
            )
        raise _bad(f"unknown action {kind!r} in /{call}")

    def _freespins(self, data: Mapping[str, Any]) -> WalletCall:
        issue = _text(data, "issue_id")
        status = _text(data, "status")
        currency = _text(data, "currency")
        amount = _amount({"amount": data.get("total_amount")})
        ops = (WalletOp(EventKind.BONUS_WIN, f"freespins:{issue}", amount, round_id=issue),)
        return WalletCall(
            kind=CallKind.TRANSACT if status == "played" else CallKind.BALANCE,
            player=_text(data, "user_id"),
            currency=currency,
            ops=ops if status == "played" else (),
            echo={"issue_id": issue},
        )

    # -- answer -----------------------------------------------------------------------------
    def answer(self, answer: WalletAnswer, credentials: Credentials) -> Outbound:
        if answer.error is not None:
            status, code, message = _ERRORS.get(answer.error, _UNKNOWN)
            return _json(status, {"code": code, "message": message, "balance": answer.balance})
        body: dict[str, Any] = {"balance": answer.balance}
        if answer.call.echo.get("game_id"):
            body["game_id"] = answer.call.echo["game_id"]
        transactions = [
            {
                "action_id": o.op.tx_id,
                "tx_id": o.transfer_id or o.op.tx_id,
                "processed_at": (o.processed_at.isoformat() if o.processed_at else None),
            }
            for o in answer.outcomes
            if o.op.kind is not EventKind.ROUND_END
        ]
        if answer.call.ops:
            body["transactions"] = transactions
        return _json(200, body)

    def refuse(self, inbound: Inbound, refusal: Refusal, credentials: Credentials) -> Outbound:
        status, code, message = _ERRORS.get(refusal.reason, _UNKNOWN)
        return _json(status, {"code": code, "message": message})


def _json(status: int, body: Mapping[str, Any]) -> Outbound:
    return Outbound(status, orjson.dumps(body))
